"""Instance labels inside an OME-Zarr image: the NGFF ``labels`` group.

``image.ome.zarr/labels/<name>`` is itself a multiscale image (integer, with
a pyramid by subsampling) carrying ``image-label`` metadata that points back
to the image, and ``image.ome.zarr/labels`` lists the label images, so
napari and other NGFF viewers show them as labels over the image.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import dask.array as da
import zarr

from ..errors import StorageError
from ._open import open_zarr_node
from ._paths import exists, join, normalize_url
from ._write import Executor, write_image

__all__ = ["write_labels", "label_names"]


def _ngff_version(group: zarr.Group) -> str:
    attrs = dict(group.attrs)
    if "ome" in attrs:
        return str(attrs["ome"].get("version", "0.5"))
    if "multiscales" in attrs:
        return str(attrs["multiscales"][0].get("version", "0.4"))
    raise StorageError(f"{group.store!r}: expected an OME-Zarr image (multiscales metadata) to hold labels.")


def label_names(image_url: str | os.PathLike) -> list[str]:
    """Names listed in the image's ``labels`` group (empty if it has none)."""
    url = join(normalize_url(image_url), "labels")
    if not exists(url):
        return []
    attrs = dict(open_zarr_node(url).attrs)
    return list((attrs.get("ome", attrs)).get("labels", []))


def write_labels(
    labels: da.Array,
    image_url: str | os.PathLike,
    name: str = "labels",
    *,
    axes: Sequence[str],
    overwrite: bool = False,
    resume: bool = False,
    source: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    levels: int | None = None,
) -> dict[str, int]:
    """Write integer ``labels`` as the label image ``name`` of the OME-Zarr image at ``image_url``.

    Parameters
    ----------
    labels : dask.array.Array of int, shape matching the image without ``c``
    image_url : str or path
        An existing OME-Zarr image (NGFF 0.4 or 0.5); its version is used.
    name : str
        Name of the label image (a plain name, no ``/``).
    axes : sequence of str
        Axes of ``labels``, e.g. ``("y", "x")``.
    overwrite, resume, source, executor, levels
        As for :func:`pipeline.io.write_image`.

    Returns
    -------
    dict
        As :func:`pipeline.io.write_image`.
    """
    if not name or "/" in name or name.startswith("."):
        raise StorageError(f"Expected a plain label name (no '/', no leading '.'). Got {name!r} instead.")
    image_url = normalize_url(image_url)
    image = open_zarr_node(image_url)
    if not isinstance(image, zarr.Group):
        raise StorageError(f"{image_url!r} is a plain array; labels need an OME-Zarr image.")
    version = _ngff_version(image)
    fmt = 3 if version == "0.5" else 2
    labels_url = join(image_url, "labels")
    if not exists(labels_url):
        zarr.open_group(store=labels_url, mode="w-", zarr_format=fmt)
    url = join(labels_url, name)
    result = write_image(labels, url, axes=axes, ome=True, ngff_version=version, overwrite=overwrite,
                         resume=resume, source=source, name=name, executor=executor, levels=levels)
    label_group = zarr.open_group(store=url, mode="r+", zarr_format=fmt)
    image_label = {"source": {"image": "../../"}}
    if version == "0.5":
        ome = dict(label_group.attrs["ome"])
        ome["image-label"] = image_label
        label_group.attrs["ome"] = ome
    else:
        label_group.attrs["image-label"] = {"version": version, **image_label}
    group = zarr.open_group(store=labels_url, mode="r+", zarr_format=fmt)
    names = label_names(image_url)
    if name not in names:
        names.append(name)
    if version == "0.5":
        group.attrs["ome"] = {"version": version, "labels": names}
    else:
        group.attrs["labels"] = names
    return result
