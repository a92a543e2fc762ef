"""Pre- and post-processing around the network: global normalisation, masks, channel steps.

Normalisation statistics are computed once over the whole image (or a coarse
pyramid level of it), never per block: per-block normalisation makes seams.
Channel steps (softmax, argmax, top-k, threshold) run inside each block's
task, so probabilities never travel between workers when only classes are
wanted.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

from ..errors import InputError, ShapeError
from ..kernels import count_values, shifted_scaled_f32

if TYPE_CHECKING:  # dask.array is imported where graphs are built, never by a worker's block task
    import dask.array as da

__all__ = ["Percentile", "parse_normalize", "normalization_stats", "normalize_block", "parse_post", "apply_post", "post_channels",
           "post_dtype", "mask_grid"]


@dataclass(frozen=True)
class Percentile:
    """Percentile normalisation ``(x - p_low) / (p_high - p_low)`` per channel.

    Parameters
    ----------
    low, high : float
        Percentiles in ``[0, 100]``, ``low < high``.
    reference : array, optional
        A coarse version of the image (e.g. a lower pyramid level) to compute
        the percentiles from, with the same axes.  Without it, a regular
        subsample of the image with at most ``max_samples`` pixels per channel
        is used (all pixels for small images).
    max_samples : int
        Cap on sampled pixels when no ``reference`` is given.
    """

    low: float = 1.0
    high: float = 99.8
    reference: Any = None
    max_samples: int = 2**24

    def __post_init__(self) -> None:
        if not (0 <= self.low < self.high <= 100):
            raise InputError(
                f"Expected percentiles 0 <= low < high <= 100 for normalize. Got low={self.low}, high={self.high} instead."
            )


def parse_normalize(normalize: Any) -> Percentile | tuple[float, float] | None:
    """``None``, ``True`` (1, 99.8 percentiles), ``"percentile"``, a :class:`Percentile`,
    ``("percentile", low, high)``, or fixed ``("range", lo, hi)``."""
    if normalize is None or normalize is False:
        return None
    if normalize is True or normalize == "percentile":
        return Percentile()
    if isinstance(normalize, Percentile):
        return normalize
    if isinstance(normalize, (tuple, list)) and len(normalize) == 3 and normalize[0] in ("percentile", "range"):
        kind, a, b = normalize
        if kind == "percentile":
            return Percentile(float(a), float(b))
        if not float(b) > float(a):
            raise InputError(f"Expected normalize=('range', lo, hi) with hi > lo. Got {normalize!r} instead.")
        return (float(a), float(b))
    if isinstance(normalize, str) and normalize.startswith("percentile:"):
        _, a, b = normalize.split(":")
        return Percentile(float(a), float(b))
    raise InputError(
        "Expected normalize to be None, True, a pipeline.Percentile, ('percentile', low, high) or "
        f"('range', lo, hi). Got {normalize!r} instead."
    )


def _sample(x: da.Array, max_samples: int) -> da.Array:
    """A regular subsample of the (..., Y, X, C) array with at most ``max_samples`` pixels per channel."""
    step = sampling_step(math.prod(x.shape[:-1]), max_samples)
    return x[..., ::step, ::step, :]


def _percentiles(sample: np.ndarray, low: float, high: float) -> np.ndarray:
    flat = np.asarray(sample, dtype=np.float64).reshape(-1, sample.shape[-1])
    return np.percentile(flat, [low, high], axis=0).astype(np.float64)  # (2, C)


def _histogram_offset(dtype: np.dtype) -> tuple[int, int] | None:
    """``(offset, bins)`` for dtypes of at most 16 bits (bool, [u]int8, [u]int16), else ``None``."""
    if dtype.kind == "b":
        return 0, 2
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        return -int(info.min), int(info.max) - int(info.min) + 1
    return None


def _channel_histogram(block: np.ndarray, offset: int, bins: int) -> np.ndarray:
    """Counts of every value per channel of a channels-last block: ``(bins, C)`` int64."""
    flat = np.ascontiguousarray(block).reshape(-1, block.shape[-1])
    if flat.dtype == np.bool_:
        flat = flat.view(np.uint8)
    out = np.zeros((bins, flat.shape[1]), np.int64)
    count_values(flat, offset, out)
    return out


def _sum(*parts: np.ndarray) -> np.ndarray:
    return np.sum(parts, axis=0)


def _percentiles_from_histogram(counts: np.ndarray, offset: int, low: float, high: float) -> np.ndarray:
    """``np.percentile(values, [low, high])`` (its default linear method) from per-value counts ``(bins, C)``.

    The q-th percentile of ``n`` sorted values interpolates between order
    statistics ``floor(h)`` and ``ceil(h)``, ``h = (n - 1) q / 100``; both are
    read off the cumulative counts.
    """
    out = np.empty((2, counts.shape[1]), np.float64)
    for c in range(counts.shape[1]):
        cum = np.cumsum(counts[:, c])
        n = int(cum[-1])
        for row, q in enumerate((low, high)):
            h = (n - 1) * (q / 100.0)
            k0 = int(np.floor(h))
            k1 = min(k0 + 1, n - 1)
            a, b = (float(np.searchsorted(cum, k, side="right")) - offset for k in (k0, k1))
            t = h - k0
            # NumPy's lerp: symmetric in the two ends, exact at t = 0 and t = 1
            out[row, c] = a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)
    return out


def _delayed_percentiles(sample: da.Array, low: float, high: float):
    """Percentiles per channel of the channels-last ``sample``, a delayed ``(2, C)`` float64 array.

    Images of at most 16 bits are counted chunk by chunk in parallel (one
    histogram per chunk, summed in a tree); others are gathered and sorted.
    """
    hist = _histogram_offset(sample.dtype)
    if hist is None:
        return dask.delayed(_percentiles, pure=True)(sample, low, high)
    sample = sample.rechunk({sample.ndim - 1: -1})  # a histogram per chunk holds every channel
    parts = [dask.delayed(_channel_histogram, pure=True)(b, *hist) for b in sample.to_delayed().ravel()]
    return reduce_counts(parts, hist, low, high)


#: Pixels (all channels and leading planes together) each statistics task reads from a store, at least one chunk.
STATS_REGION_PIXELS = 2**22


def _region_grid(extent: int, chunk: int, group: int) -> list[tuple[int, int]]:
    step = chunk * group
    return [(a, min(extent, a + step)) for a in range(0, extent, step)]


def _store_percentiles(source, token: str, shape: tuple[int, ...], dtype, channel_axis: int | None, spec,
                       lead_chunks: tuple[tuple[int, ...], ...]):
    """Percentiles per channel of a store, its regions read and counted in parallel tasks.

    The pixels are those :func:`_sample` keeps (every ``step``-th row and
    column of every plane, ``step`` chosen from ``spec.max_samples``), so the
    result is the one the Dask-chunk path gives, bit for bit.  Regions are
    whole storage chunks (as many as make about :data:`STATS_REGION_PIXELS`),
    so no chunk is decoded twice; each task carries the store handle itself,
    so the scheduler spreads the regions over every worker.  ``token`` names
    the store's contents (the name of the Dask array reading it);
    ``lead_chunks`` splits the leading (non-spatial) axes as that array does.
    """
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    ndim = len(shape)
    spatial = [a for a in range(ndim) if a != channel_axis][-2:]
    lead = [a for a in range(ndim) if a != channel_axis and a not in spatial]
    step = sampling_step(math.prod(shape[a] for a in lead + spatial), spec.max_samples)
    store_chunks = getattr(source.array, "chunks", None)
    if not (isinstance(store_chunks, tuple) and len(store_chunks) == ndim
            and all(isinstance(c, (int, np.integer)) and c > 0 for c in store_chunks)):
        store_chunks = (1024,) * ndim  # a store without a chunk grid: regions of 1024 px squares
    cy, cx = (int(store_chunks[a]) for a in spatial)
    per_chunk = math.prod(max(c) for c in lead_chunks) * cy * cx
    group = max(1, int(math.isqrt(max(1, STATS_REGION_PIXELS // per_chunk))))
    hist = _histogram_offset(np.dtype(dtype))
    name = "percentile-regions-" + dask.base.tokenize(token, shape, str(dtype), channel_axis, spec.low, spec.high, step)
    dsk: dict = {}
    keys = []
    lead_ranges = [[(int(a), int(b)) for a, b in zip(np.cumsum((0,) + c[:-1]), np.cumsum(c))] for c in lead_chunks]
    for lead_region in itertools.product(*lead_ranges):
        for ys in _region_grid(shape[spatial[0]], cy, group):
            for xs in _region_grid(shape[spatial[1]], cx, group):
                index = [slice(None)] * ndim
                for a, r in zip(lead, lead_region):
                    index[a] = slice(*r)
                index[spatial[0]], index[spatial[1]] = slice(*ys), slice(*xs)
                key = (name, len(keys))
                dsk[key] = (partial(_region_sample, source, tuple(index), channel_axis, (ys[0], xs[0]), step,
                                    hist),)
                keys.append(key)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    return reduce_counts([Delayed(k, graph, layer=name) for k in keys], hist, spec.low, spec.high)


def sampling_step(n: int, max_samples: int) -> int:
    """Every ``step``-th row and column is counted, so that at most ``max_samples`` of ``n`` pixels are."""
    return max(1, int(math.ceil(math.sqrt(n / max_samples))))


def count_pixels(w: np.ndarray, origin: tuple[int, int], step: int, hist):
    """The pixels of the channels-last ``w`` (``w[..., 0, 0, :]`` at image position ``origin``) on the global
    sampling grid: their counts ``(bins, C)`` when ``hist`` is ``(offset, bins)``, else the pixels ``(n, C)``."""
    if step > 1:
        # the global sampling grid (every step-th row and column from 0), seen from this region's origin
        w = w[..., (-origin[0]) % step :: step, (-origin[1]) % step :: step, :]
    if hist is None:
        return np.ascontiguousarray(w).reshape(-1, w.shape[-1])
    return _channel_histogram(w, *hist)


def reduce_counts(parts: list, hist, low: float, high: float):
    """Delayed ``(2, C)`` percentiles from the delayed :func:`count_pixels` results of every region
    (histograms summed in a tree when ``hist`` is ``(offset, bins)``, else the pixels gathered)."""
    if hist is None:
        return dask.delayed(_percentiles_of_parts, pure=True)(parts, low, high)
    while len(parts) > 1:
        parts = [dask.delayed(_sum, pure=True)(*parts[i : i + 8]) for i in range(0, len(parts), 8)]
    return dask.delayed(_percentiles_from_histogram, pure=True)(parts[0], hist[0], low, high)


def _region_sample(source, index: tuple, channel_axis: int | None, origin: tuple[int, int], step: int, hist):
    """:func:`count_pixels` of one store region."""
    from ._windows import read_channels_last

    return count_pixels(read_channels_last(source, index, channel_axis), origin, step, hist)


def _lead_chunks(arr: da.Array, channel_axis: int | None) -> tuple[tuple[int, ...], ...]:
    """``arr``'s chunks along its leading axes (neither channels nor the last two others)."""
    others = [a for a in range(arr.ndim) if a != channel_axis]
    return tuple(arr.chunks[a] for a in others[:-2])


def _percentiles_of_parts(parts: list[np.ndarray], low: float, high: float) -> np.ndarray:
    return _percentiles(np.concatenate(parts, axis=0), low, high)


def normalization_stats(x: da.Array, spec, reference_channel_axis: int | None = None, *, image: da.Array | None = None):
    """Statistics of the whole image for ``normalize_block``: a delayed ``(2, C)`` array, or ``None``.

    Fixed ranges need none.  Percentiles are computed once, from the
    ``reference`` (a coarse pyramid level) or a regular subsample of the
    channels-last ``x``, never per block.  When the array they come from is a
    plain view of a store (``image``, ``x`` in the store's own axis order, or
    the reference), a few tasks read regions of whole storage chunks straight
    from the store and count them; otherwise the Dask chunks are counted.
    """
    import dask.array as da

    if isinstance(spec, tuple):
        return None
    from ._windows import window_source

    if spec.reference is not None:
        from ._predict import as_dask_array

        base = as_dask_array(spec.reference)
        ref = base[..., None] if reference_channel_axis is None else da.moveaxis(base, reference_channel_axis, -1)
        if ref.shape[-1] != x.shape[-1]:
            raise ShapeError(
                f"Expected the normalisation reference to have {x.shape[-1]} channel(s) like the image. "
                f"Got {ref.shape[-1]} instead."
            )
        samples = ref
    else:
        base, samples = image, x
    source = window_source(base) if base is not None else None
    if source is not None:
        return _store_percentiles(source, base.name, tuple(base.shape), base.dtype, reference_channel_axis, spec,
                                  _lead_chunks(base, reference_channel_axis))
    return _delayed_percentiles(_sample(samples, spec.max_samples), spec.low, spec.high)


#: Input dtypes :func:`normalize_block` scales in one compiled pass.
_FUSED_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32,
                                                np.int64, np.float32, np.float64))


def normalize_block(block: np.ndarray, spec, stats: np.ndarray | None) -> np.ndarray:
    """Normalise a channels-last block ``(..., C)`` to float32 with whole-image statistics.

    ``(x - lo) / (hi - lo)`` per channel: ``lo, hi`` are the fixed range, or
    ``stats`` (rows: low and high percentile) from :func:`normalization_stats`.
    """
    if spec is None:
        return np.asarray(block, dtype=np.float32)
    if isinstance(spec, tuple):
        lo, hi = spec
        return ((block.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)
    lo, hi = np.asarray(stats[0], np.float64), np.asarray(stats[1], np.float64)
    scale = 1.0 / np.maximum(hi - lo, 1e-20)
    block = np.asarray(block)
    if block.dtype not in _FUSED_DTYPES or block.ndim < 1 or block.shape[-1] != lo.size:
        return ((block - lo) * scale).astype(np.float32)
    # one pass with the same float64 arithmetic (the NumPy expression makes three, through float64 temporaries)
    flat = np.ascontiguousarray(block).reshape(-1, lo.size)
    out = np.empty(flat.shape, np.float32)
    shifted_scaled_f32(flat, lo, scale, out)
    return out.reshape(block.shape)


# ----------------------------------------------------------------------------- channel steps
_POSTS = ("softmax", "argmax", "topk", "threshold")


def parse_post(post: Any) -> tuple[str, float] | None:
    """``None``, ``"softmax"``, ``"argmax"``, ``("topk", k)`` or ``("threshold", t)``."""
    if post is None:
        return None
    if post in ("softmax", "argmax"):
        return (post, 0.0)
    if isinstance(post, (tuple, list)) and len(post) == 2 and post[0] in ("topk", "threshold"):
        kind, v = post
        if kind == "topk" and (int(v) != v or int(v) < 1):
            raise InputError(f"Expected post=('topk', k) with an integer k >= 1. Got {post!r} instead.")
        return (kind, float(v))
    raise InputError(
        f"Expected post to be None, 'softmax', 'argmax', ('topk', k) or ('threshold', t). Got {post!r} instead."
    )


def post_channels(post, cout: int) -> int:
    if post is None or post[0] in ("softmax", "threshold"):
        return cout
    if post[0] == "argmax":
        return 1
    k = int(post[1])
    if k > cout:
        raise InputError(f"Expected post=('topk', k) with k <= {cout} output channels. Got k={k} instead.")
    return k


def post_dtype(post) -> np.dtype:
    if post is None or post[0] == "softmax":
        return np.dtype(np.float32)
    if post[0] == "threshold":
        return np.dtype(np.uint8)
    return np.dtype(np.int32)


def apply_post(y: np.ndarray, post) -> np.ndarray:
    """Apply a channel step to a channels-last block ``(..., C)``."""
    if post is None:
        return y
    kind, v = post
    if kind == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    if kind == "argmax":
        return np.argmax(y, axis=-1)[..., None].astype(np.int32)
    if kind == "threshold":
        return (y > v).astype(np.uint8)
    k = int(v)
    # stable descending order: ties go to the lower channel index
    order = np.argsort(-y, axis=-1, kind="stable")[..., :k]
    return order.astype(np.int32)


# ----------------------------------------------------------------------------- masks
def mask_grid(mask: Any, image_hw: tuple[int, int], by: list[int], bx: list[int]) -> np.ndarray:
    """Which blocks intersect the low-resolution boolean ``mask``: a ``(nby, nbx)`` bool grid.

    Mask pixel ``(i, j)`` stands for image rows ``[i*H/mh, (i+1)*H/mh)`` and
    the matching columns; a block is kept when any True mask pixel overlaps
    its extent.
    """
    from ._predict import as_dask_array

    m = np.asarray(as_dask_array(mask).compute() if not isinstance(mask, np.ndarray) else mask)
    if m.ndim != 2:
        raise ShapeError(f"Expected a 2-D (Y, X) mask. Got shape {m.shape} instead.")
    if m.dtype.kind not in "biuf":
        raise InputError(f"Expected a boolean mask. Got dtype {m.dtype} instead.")
    H, W = image_hw
    mh, mw = m.shape
    if mh > H or mw > W:
        raise ShapeError(f"Expected a mask no larger than the image ({H} x {W}). Got {mh} x {mw} instead.")
    m = m.astype(bool)
    # prefix sums give "any True in a rectangle" per block in O(1)
    s = np.zeros((mh + 1, mw + 1), np.int64)
    s[1:, 1:] = m.cumsum(0).cumsum(1)
    grid = np.zeros((len(by) - 1, len(bx) - 1), bool)
    for i in range(len(by) - 1):
        r0, r1 = by[i] * mh // H, -(-by[i + 1] * mh // H)
        for j in range(len(bx) - 1):
            c0, c1 = bx[j] * mw // W, -(-bx[j + 1] * mw // W)
            grid[i, j] = (s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]) > 0
    return grid
