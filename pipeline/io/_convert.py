"""Importing TIFF/BigTIFF (lazily, through tifffile's Zarr store) and PNG/JPEG into Dask arrays."""

from __future__ import annotations

import os

import dask.array as da
from dask.base import tokenize
import numpy as np

from ..errors import ImageError, StorageError
from ._open import Image, open_image
from ._write import Executor, write_image
from ._paths import exists, is_local, local_path, normalize_url

__all__ = ["read_any", "convert", "ngff_order", "TIFF_SUFFIXES", "PICTURE_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".ome.tif", ".ome.tiff")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TIFF_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}


class _TiffArray:
    """A TIFF as a lazily read array: each read opens the file by path.

    Only the path, shape and dtype travel with the graph, so the array can be
    read on the workers of a distributed cluster (tifffile's store holds an
    open file and cannot be pickled).
    """

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        import tifffile
        import zarr

        with tifffile.imread(self.path, aszarr=True) as store:
            node = zarr.open(store=store, mode="r")
            array = node if isinstance(node, zarr.Array) else node[sorted(node.array_keys(), key=int)[0]]
            return np.asarray(array[key])


def _tiff(path: str) -> Image:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            series_axes, shape, dtype = series.axes, series.shape, series.dtype
            page = series.pages[0]
            tile = (getattr(page, "tilelength", 0) or 0, getattr(page, "tilewidth", 0) or 0)
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise StorageError(f"{path!r} cannot be read as TIFF: {' '.join(str(exc).split())}.") from None
    axes = [_TIFF_AXES.get(a, f"dim_{i}") for i, a in enumerate(series_axes)]
    # read blocks of whole tiles (or whole strips of rows), about 1024 px on a side
    def whole_tiles(n: int, t: int) -> int:
        return min(n, max(1024 // t, 1) * t) if t else min(n, 1024)

    chunks = [shape[i] if a == "c" else 1 for i, a in enumerate(axes)]
    for name, t in zip(("y", "x"), tile):
        if name in axes:
            i = axes.index(name)
            chunks[i] = whole_tiles(shape[i], t)
    data = da.from_array(_TiffArray(path, shape, dtype), chunks=tuple(chunks), asarray=False,
                         name=f"tiff-{tokenize(path, os.path.getmtime(path))}", meta=np.empty((0,) * len(shape), dtype))
    return Image(data, tuple(axes), path, "tiff")


def _picture(path: str) -> Image:
    import skimage.io

    try:
        arr = np.asarray(skimage.io.imread(path))
    except Exception as exc:
        raise StorageError(f"{path!r} cannot be read as PNG/JPEG: {' '.join(str(exc).split())}.") from None
    axes = ("y", "x") if arr.ndim == 2 else ("y", "x", "c")
    if arr.ndim not in (2, 3):
        raise ImageError(f"{path!r}: expected a (Y, X) or (Y, X, C) picture. Got shape {arr.shape} instead.")
    return Image(da.from_array(arr, chunks=-1), axes, path, "picture")


def read_any(url: str | os.PathLike) -> Image:
    """Open a TIFF, PNG/JPEG or Zarr/OME-Zarr input lazily (pictures are small and read whole).

    Parameters
    ----------
    url : str or path

    Returns
    -------
    Image
        ``data`` of shape ``(...)`` with ``axes`` from the file's metadata.
    """
    url = normalize_url(url)
    lower = url.lower()
    if lower.endswith(TIFF_SUFFIXES) or lower.endswith(PICTURE_SUFFIXES):
        if not is_local(url):
            raise StorageError(f"Expected a local TIFF/PNG/JPEG file. Got URL {url!r} instead.")
        path = local_path(url)
        if not exists(url):
            raise StorageError(f"Input {path!r} does not exist.")
        return _tiff(path) if lower.endswith(TIFF_SUFFIXES) else _picture(path)
    return open_image(url)


_NGFF_RANK = {"t": 0, "c": 1, "z": 2, "y": 3, "x": 4}


def ngff_order(data: da.Array, axes: tuple[str, ...], *, where: str) -> tuple[da.Array, tuple[str, ...]]:
    """Transpose ``data`` to NGFF axis order (t, c, z, y, x); unnamed leading axes become z, then t."""
    axes = list(axes)
    unnamed = [i for i, a in enumerate(axes) if a not in _NGFF_RANK]
    free = [a for a in ("z", "t") if a not in axes]
    if len(unnamed) > len(free):
        raise StorageError(
            f"{where}: cannot name axes {tuple(axes)} as OME-Zarr t, c, z, y, x. Expected at most "
            f"{len(free)} unnamed axes. Got {len(unnamed)} instead."
        )
    for i, name in zip(reversed(unnamed), free):
        axes[i] = name
    order = sorted(range(len(axes)), key=lambda i: _NGFF_RANK[axes[i]])
    return data.transpose(order), tuple(axes[i] for i in order)


def convert(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    chunks: int = 1024,
    ome: bool = True,
    overwrite: bool = False,
    executor: Executor | None = None,
) -> dict[str, int]:
    """Import a TIFF/BigTIFF, PNG/JPEG or Zarr image into chunked (OME-)Zarr.

    Parameters
    ----------
    source : path
        TIFF files are read chunk by chunk through tifffile's Zarr store, never whole.
    target : path or URL
    chunks : int
        Edge of the output chunks along y and x; other axes get chunks of 1,
        channels one chunk.
    ome, overwrite, executor
        As for :func:`write_image`.

    Returns
    -------
    dict
        As :func:`write_image`.
    """
    if isinstance(chunks, bool) or int(chunks) < 1:
        raise StorageError(f"Expected chunks to be a positive integer. Got {chunks!r} instead.")
    image = read_any(source)
    data, axes = image.data, image.axes
    if ome:
        data, axes = ngff_order(data, axes, where=str(source))
    edge = int(chunks)
    target_chunks = tuple(edge if a in ("y", "x") else (-1 if a == "c" else 1) for a in axes)
    data = data.rechunk(target_chunks)
    return write_image(data, target, axes=axes, ome=ome, overwrite=overwrite, executor=executor,
                       channel_names=image.channel_names, name=os.path.basename(str(source)),
                       source={"converted_from": os.path.basename(str(source))})
