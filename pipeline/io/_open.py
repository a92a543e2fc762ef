"""Opening Zarr v2/v3 arrays and OME-Zarr (NGFF 0.4/0.5) images as lazy Dask arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from ..errors import CorruptChunkError, StorageError
from ._ome import channel_labels, level_scale, read_multiscales
from ._paths import exists, normalize_url

__all__ = ["Image", "open_image", "open_zarr_node"]

_AXIS_ALIASES = {"channel": "c", "channels": "c", "time": "t", "s": "c"}


@dataclass(frozen=True)
class Image:
    """A lazily opened image and what its metadata says about it.

    Attributes
    ----------
    data : dask.array.Array, shape (...)
        Chunked like the stored array; reading a chunk that cannot be decoded
        raises :class:`~pipeline.errors.CorruptChunkError` naming the chunk.
    axes : tuple of str, one per dimension
        ``t``, ``c``, ``z``, ``y``, ``x`` where known; ``dim_<i>`` otherwise.
    url : str
    format : str
        ``"ome-zarr 0.4"``, ``"ome-zarr 0.5"``, ``"zarr v2"`` or ``"zarr v3"``.
    level, levels : int
        The pyramid level opened and how many there are (1 for a plain array).
    pixel_size : tuple of float or None
        Physical pixel size per axis (OME-Zarr ``scale``) at ``level``.
    channel_names : list of str or None
    attributes : dict
        The array's (plain Zarr) or group's (OME-Zarr) attributes.
    """

    data: da.Array
    axes: tuple[str, ...]
    url: str
    format: str
    level: int = 0
    levels: int = 1
    pixel_size: tuple[float, ...] | None = None
    channel_names: list[str] | None = None
    attributes: dict | None = None

    @property
    def channel_axis(self) -> int | None:
        """Index of the ``c`` axis, or ``None``."""
        return self.axes.index("c") if "c" in self.axes else None


class _CheckedArray:
    """A Zarr array whose reads name the chunk that failed to decode."""

    def __init__(self, array: zarr.Array, url: str):
        self.array = array
        self.url = url
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim
        self.chunks = array.chunks

    def _chunk_key(self, key: tuple) -> str:
        coords = tuple((s.start or 0) // c for s, c in zip(key, self.chunks))
        meta = self.array.metadata
        if hasattr(meta, "chunk_key_encoding"):
            return meta.chunk_key_encoding.encode_chunk_key(coords)
        return (getattr(meta, "dimension_separator", None) or ".").join(map(str, coords))

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except OSError as exc:
            raise StorageError(
                f"Cannot read chunk {self._chunk_key(key)!r} of {self.url!r}: {exc.strerror or exc}."
            ) from None
        except Exception as exc:  # codecs raise many types for a damaged chunk
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise CorruptChunkError(
                f"Chunk {self._chunk_key(key)!r} of {self.url!r} cannot be decoded ({detail}). "
                "Expected a chunk written by its codecs; the chunk file is truncated or damaged."
            ) from None


def open_zarr_node(url: str, *, mode: str = "r") -> zarr.Array | zarr.Group:
    """The Zarr array or group at ``url``; :class:`StorageError` if absent or not Zarr."""
    url = normalize_url(url)
    if not exists(url):
        raise StorageError(f"Input {url!r} does not exist. Expected a Zarr array or OME-Zarr image.")
    try:
        return zarr.open(store=url, mode=mode)
    except Exception as exc:
        raise StorageError(
            f"{url!r} is not a Zarr array or group (expected zarr.json, .zarray or .zgroup): "
            f"{' '.join(str(exc).split()) or type(exc).__name__}."
        ) from None


def _plain_axes(array: zarr.Array) -> tuple[str, ...]:
    names = getattr(array.metadata, "dimension_names", None) or array.attrs.get("_ARRAY_DIMENSIONS")
    if names and all(names) and len(names) == array.ndim:
        return tuple(_AXIS_ALIASES.get(str(n).lower(), str(n).lower()) for n in names)
    lead = tuple(f"dim_{i}" for i in range(array.ndim - 2))
    return lead + ("y", "x")[: array.ndim]


def _as_dask(array: zarr.Array, url: str) -> da.Array:
    checked = _CheckedArray(array, url)
    name = "read-" + tokenize(url, array.shape, array.chunks, str(array.dtype), array.metadata.to_dict())
    return da.from_array(checked, chunks=array.chunks, name=name, asarray=False, fancy=False,
                         meta=np.empty((0,) * array.ndim, array.dtype))


def open_image(url: str | os.PathLike, *, level: int = 0) -> Image:
    """Open a Zarr array or an OME-Zarr image lazily.

    Parameters
    ----------
    url : str or path
        Local path or fsspec URL (``file://``, ``memory://``, any installed
        backend) of a Zarr v2/v3 array or an OME-Zarr (NGFF 0.4 or 0.5) group.
    level : int
        Pyramid level of an OME-Zarr image (0 is full resolution).

    Returns
    -------
    Image
        ``image.data`` is a Dask array of shape ``(...)`` in the stored axis
        order; ``image.axes`` names the axes.

    Raises
    ------
    StorageError
        Missing path, not Zarr, a group without OME-Zarr metadata, level out of range.
    """
    url = normalize_url(url)
    node = open_zarr_node(url)
    if isinstance(node, zarr.Array):
        if level != 0:
            raise StorageError(f"{url!r} is a plain Zarr array with one level; expected level 0. Got level {level} instead.")
        return Image(_as_dask(node, url), _plain_axes(node), url, f"zarr v{node.metadata.zarr_format}",
                     attributes=dict(node.attrs))
    attrs = dict(node.attrs)
    parsed = read_multiscales(attrs, where=url)
    if parsed is None:
        raise StorageError(
            f"{url!r} is a Zarr group without OME-Zarr multiscales metadata; expected an array or an OME-Zarr image."
        )
    version, ms, body = parsed
    paths = ms["paths"]
    if not 0 <= level < len(paths):
        raise StorageError(f"{url!r} has pyramid levels 0 to {len(paths) - 1}; expected one of them. Got level {level} instead.")
    try:
        array = node[paths[level]]
    except KeyError:
        raise StorageError(f"{url!r}: pyramid level {level} (path {paths[level]!r}) is listed but missing.") from None
    axes = tuple(_AXIS_ALIASES.get(a.lower(), a.lower()) for a in ms["axes"])
    if len(axes) != array.ndim:
        raise StorageError(
            f"{url!r}: OME-Zarr metadata names {len(axes)} axes {axes} but level {level} has {array.ndim} dimensions."
        )
    scale = level_scale(ms, level)
    return Image(
        _as_dask(array, f"{url.rstrip('/')}/{paths[level]}"),
        axes,
        url,
        f"ome-zarr {version}",
        level=level,
        levels=len(paths),
        pixel_size=tuple(scale) if scale else None,
        channel_names=channel_labels(body),
        attributes=attrs,
    )
