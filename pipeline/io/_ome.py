"""OME-Zarr (NGFF) metadata: building and reading ``multiscales`` for 0.4 and 0.5.

NGFF 0.4 lives in a Zarr v2 group's ``.zattrs`` (``multiscales`` at the top);
NGFF 0.5 lives in a Zarr v3 group's ``zarr.json`` under ``attributes["ome"]``.
Axes are ordered time, channel, space (``z``, ``y``, ``x``) as both versions require.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import StorageError

__all__ = ["NGFF_VERSIONS", "axis_type", "check_ngff_axes", "multiscales_attrs", "read_multiscales"]

NGFF_VERSIONS = ("0.4", "0.5")
_ZARR_FORMAT = {"0.4": 2, "0.5": 3}
_ORDER = {"time": 0, "channel": 1, "space": 2}


def axis_type(name: str) -> str:
    """NGFF axis type of an axis name: ``t`` time, ``c`` channel, ``z``/``y``/``x`` space."""
    return {"t": "time", "c": "channel"}.get(name, "space")


def zarr_format(version: str) -> int:
    """The Zarr format an NGFF version is stored in."""
    if version not in _ZARR_FORMAT:
        raise StorageError(f"Expected an NGFF version in {NGFF_VERSIONS}. Got {version!r} instead.")
    return _ZARR_FORMAT[version]


def check_ngff_axes(axes: Sequence[str], *, where: str) -> None:
    """Raise :class:`StorageError` unless ``axes`` form a valid NGFF image."""
    types = [axis_type(a) for a in axes]
    ok = (
        2 <= len(axes) <= 5
        and len(set(axes)) == len(axes)
        and set(axes) <= {"t", "c", "z", "y", "x"}
        and types == sorted(types, key=_ORDER.__getitem__)
        and 2 <= types.count("space") <= 3
        and list(axes[-2:]) == ["y", "x"]
    )
    if not ok:
        raise StorageError(
            f"{where}: expected OME-Zarr axes like (t, c, z, y, x) in that order (2 to 5 axes, 2 or 3 spatial). "
            f"Got {tuple(axes)} instead. Write a plain Zarr array (--plain-zarr) for other layouts."
        )


def _axes_json(axes: Sequence[str], units: Mapping[str, str] | None) -> list[dict[str, str]]:
    out = []
    for name in axes:
        entry = {"name": name, "type": axis_type(name)}
        if units and name in units:
            entry["unit"] = units[name]
        out.append(entry)
    return out


def multiscales_attrs(
    *,
    version: str,
    axes: Sequence[str],
    level_paths: Sequence[str],
    level_scales: Sequence[Sequence[float]],
    name: str,
    channel_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Group attributes of an NGFF image with one multiscale pyramid.

    Parameters
    ----------
    version : {"0.4", "0.5"}
    axes : sequence of str, length D
    level_paths : sequence of str, one per pyramid level (finest first)
    level_scales : sequence of D floats per level
        Physical size of a pixel along each axis at that level.
    name : str
    channel_names : sequence of str, optional
        Labels of the ``c`` axis, written as ``omero`` channel metadata.
    """
    zarr_format(version)
    datasets = [
        {"path": p, "coordinateTransformations": [{"type": "scale", "scale": [float(s) for s in sc]}]}
        for p, sc in zip(level_paths, level_scales)
    ]
    ms: dict[str, Any] = {"axes": _axes_json(axes, units), "datasets": datasets, "name": name}
    if version == "0.4":
        ms = {"version": "0.4", **ms}
    body: dict[str, Any] = {"multiscales": [ms]}
    if channel_names:
        body["omero"] = {
            "channels": [
                {"label": str(lbl), "active": True, "color": "FFFFFF", "coefficient": 1.0, "family": "linear",
                 "inverted": False, "window": {"start": 0.0, "end": 1.0, "min": 0.0, "max": 1.0}}
                for lbl in channel_names
            ],
            "rdefs": {"model": "color" if len(channel_names) > 1 else "greyscale"},
        }
        if version == "0.4":
            body["omero"]["version"] = "0.4"
    return body if version == "0.4" else {"ome": {"version": "0.5", **body}}


def read_multiscales(attrs: Mapping[str, Any], *, where: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """``(version, multiscale, ome_body)`` from group attributes, or ``None`` if not an NGFF image."""
    if "ome" in attrs and isinstance(attrs["ome"], Mapping):
        body = dict(attrs["ome"])
        version = str(body.get("version", "0.5"))
    elif "multiscales" in attrs:
        body = dict(attrs)
        ms0 = body["multiscales"][0] if body["multiscales"] else {}
        version = str(ms0.get("version", "0.4")) if isinstance(ms0, Mapping) else "0.4"
    else:
        return None
    try:
        ms = body["multiscales"][0]
        axes = [a["name"] if isinstance(a, Mapping) else str(a) for a in ms["axes"]]
        paths = [d["path"] for d in ms["datasets"]]
    except (KeyError, IndexError, TypeError) as exc:
        raise StorageError(f"{where}: malformed OME-Zarr multiscales metadata ({exc!r}); expected axes and datasets.") from None
    if not paths:
        raise StorageError(f"{where}: OME-Zarr multiscales lists no datasets; expected at least one level.")
    return version, {**ms, "axes": axes, "paths": paths}, body


def level_scale(ms: Mapping[str, Any], level: int) -> list[float] | None:
    """The ``scale`` transform of pyramid ``level``, if given."""
    for t in ms["datasets"][level].get("coordinateTransformations", []):
        if t.get("type") == "scale":
            return [float(s) for s in t["scale"]]
    return None


def channel_labels(body: Mapping[str, Any]) -> list[str] | None:
    """Channel labels from ``omero`` metadata, if present."""
    try:
        return [str(c.get("label", f"c{i}")) for i, c in enumerate(body["omero"]["channels"])]
    except (KeyError, TypeError, AttributeError):
        return None
