"""Public entry points: a lazy Dask image of any size, or one NumPy region."""

from __future__ import annotations

from operator import getitem
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..errors import DTypeError, InputError, ShapeError
from ._render import render_region
from ._spec import CELL, MAX_PER_CELL, NucleiSpec, parse_seed

__all__ = ["nuclei", "nuclei_block"]

_DTYPES = {"uint16": np.dtype(np.uint16), "float32": np.dtype(np.float32)}
_LABEL_LIMIT = np.iinfo(np.int32).max


def _parse_shape(shape: Any) -> tuple[int, int]:
    try:
        dims = tuple(shape)
        ok = len(dims) == 2 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims
        )
    except TypeError:
        ok = False
    if not ok:
        raise ShapeError(f"Expected shape to be two positive integers (Y, X). Got {shape!r} instead.")
    height, width = (int(d) for d in dims)
    cells = (-(-height // CELL)) * (-(-width // CELL))
    if cells * MAX_PER_CELL >= _LABEL_LIMIT:
        raise ShapeError(
            f"Expected an image small enough for int32 labels (at most {_LABEL_LIMIT // MAX_PER_CELL} "
            f"cells of {CELL}x{CELL} pixels). Got shape {(height, width)} instead."
        )
    return height, width


def _parse_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise DTypeError(f"Expected dtype to be one of {', '.join(_DTYPES)}. Got {dtype!r} instead.")
    return dt


def _parse_region(region: Any, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    if region is None:
        return 0, shape[0], 0, shape[1]
    try:
        (y0, y1), (x0, x1) = ((int(a), int(b)) for a, b in region)
    except (TypeError, ValueError):
        raise InputError(f"Expected region to be ((y0, y1), (x0, x1)). Got {region!r} instead.")
    if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
        raise ShapeError(
            f"Expected region inside the image of shape {shape} and non-empty. Got {region!r} instead."
        )
    return y0, y1, x0, x1


def _quantise(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint16:
        return np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    return image.astype(np.float32)


def _block(spec: NucleiSpec, seed: int, shape, dtype: np.dtype, y0: int, y1: int, x0: int, x1: int):
    image, labels = render_region(spec, seed, shape, y0, y1, x0, x1)
    return _quantise(image, dtype), labels


def nuclei_block(
    shape: tuple[int, int],
    region: tuple[tuple[int, int], tuple[int, int]] | None = None,
    *,
    seed: int = 0,
    dtype: Any = "uint16",
    **appearance: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """One region of the synthetic nuclei image of ``shape`` as NumPy arrays.

    Equal, pixel for pixel, to the same region of :func:`nuclei` with the same
    ``shape``, ``seed`` and appearance, whatever its chunks.

    Parameters
    ----------
    shape : (int, int)
        Shape ``(Y, X)`` of the whole (virtual) image.
    region : ((int, int), (int, int)), optional
        Half-open ``((y0, y1), (x0, x1))`` inside ``shape``; the whole image by default.
    seed : int
        Non-negative seed; the image is a pure function of it.
    dtype : "uint16" or "float32"
        Image dtype (camera counts).
    **appearance
        Fields of :class:`NucleiSpec` (``radius``, ``coverage``, ``blur``, ...).

    Returns
    -------
    image : (y1 - y0, x1 - x0) uint16 or float32
        Fluorescence image in camera counts.
    labels : (y1 - y0, x1 - x0) int32
        Instance labels: 0 is background, ids are unique over the whole image.
    """
    spec = _spec(appearance)
    shape = _parse_shape(shape)
    y0, y1, x0, x1 = _parse_region(region, shape)
    return _block(spec, parse_seed(seed), shape, _parse_dtype(dtype), y0, y1, x0, x1)


def _spec(appearance: dict) -> NucleiSpec:
    try:
        return NucleiSpec(**appearance)
    except TypeError:
        fields = ", ".join(NucleiSpec.__dataclass_fields__)
        raise InputError(f"Expected appearance options among {fields}. Got {', '.join(appearance)} instead.")


def nuclei(
    shape: tuple[int, int],
    *,
    seed: int = 0,
    chunks: Any = 1024,
    dtype: Any = "uint16",
    **appearance: Any,
) -> tuple[da.Array, da.Array]:
    """A lazy synthetic fluorescence nuclei image with its ground-truth instance labels.

    Nothing is computed here: each chunk is rendered when asked for, from the
    seed and its own position only, so an image of 100k x 100k pixels costs
    nothing until a region of it is read, and two chunkings of one image give
    identical arrays.

    Nuclei are ellipses with perturbed outlines, varying size, elongation,
    brightness, chromatin texture and edge blur; they touch and overlap (the
    later one in the image-wide order owns the overlap in ``labels`` and the
    signals add in ``image``); the background varies smoothly; the camera adds
    Poisson shot noise and Gaussian read noise.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(Y, X)``.
    seed : int
        Non-negative seed; the image is a pure function of it.
    chunks : int, (int, int) or Dask chunks
        Chunking of both outputs.
    dtype : "uint16" or "float32"
        Image dtype (camera counts).
    **appearance
        Fields of :class:`NucleiSpec`: ``radius=(5, 14)``, ``elongation``,
        ``outline``, ``coverage=0.25``, ``brightness``, ``dimmest``,
        ``background``, ``unevenness``, ``blur``, ``texture``, ``read_noise``,
        ``offset``.

    Returns
    -------
    image : (Y, X) dask.array.Array of uint16 or float32
    labels : (Y, X) dask.array.Array of int32
        0 is background; ids are unique over the whole image.

    Examples
    --------
    >>> image, labels = nuclei((100_000, 100_000), seed=3, chunks=2048)
    >>> image.dtype, labels.dtype, labels.shape
    (dtype('uint16'), dtype('int32'), (100000, 100000))
    """
    spec = _spec(appearance)
    shape = _parse_shape(shape)
    seed = parse_seed(seed)
    dtype = _parse_dtype(dtype)
    try:
        chunks = normalize_chunks(chunks, shape)
    except (ValueError, TypeError) as err:
        raise InputError(
            f"Expected chunks for shape {shape} (int, pair or Dask chunks). Got {chunks!r} instead."
        ) from err
    token = tokenize(spec, seed, shape, dtype.str, chunks)
    pair_name = f"synthetic-nuclei-{token}"
    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    pairs = {
        (pair_name, i, j): (_block, spec, seed, shape, dtype, int(sy[i]), int(sy[i + 1]), int(sx[j]), int(sx[j + 1]))
        for sy, sx in [starts]
        for i in range(len(chunks[0]))
        for j in range(len(chunks[1]))
    }
    outputs = []
    for index, (kind, out_dtype) in enumerate((("image", dtype), ("labels", np.dtype(np.int32)))):
        name = f"synthetic-nuclei-{kind}-{token}"
        layer = {(name, i, j): (getitem, (pair_name, i, j), index) for (_, i, j) in pairs}
        graph = HighLevelGraph({pair_name: pairs, name: layer}, {pair_name: set(), name: {pair_name}})
        outputs.append(da.Array(graph, name, chunks=chunks, meta=np.empty((0, 0), out_dtype)))
    return outputs[0], outputs[1]
