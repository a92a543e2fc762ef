"""Blocks that read their own haloed window straight from the store.

Dask's ``overlap`` builds every haloed block from its neighbours' blocks, so
an input block stays in memory until the blocks of the next row have taken
their halos from it: worker memory grows with the image width in blocks.
When the input is a plain view of a sliceable store (a Zarr array, an
OME-Zarr level opened by :func:`pipeline.io.open_image`, anything wrapped by
``dask.array.from_array``), each block's task instead reads its window
``[y0 - halo, y1 + halo) x [x0 - halo, x1 + halo)`` (clipped to the image)
from the store itself.  No task then depends on another block, and memory is
bounded by the blocks in flight, whatever the image size.  The price is that
halo pixels are read (and their storage chunks decoded) by each block that
needs them, which is small next to running the network on them.

Percentile normalisation needs every pixel counted before any block runs.
For an image that fits in memory, each window is then read by a task that
also counts its block's own pixels, and the block's network runs on that
window once the counts are summed: one read per window instead of a
counting pass plus one.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import dask
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ._metrics import meter
from ._prepost import _histogram_offset, count_pixels, reduce_counts, sampling_step

if TYPE_CHECKING:  # dask.array is imported where graphs are built, never by a worker's block task
    import dask.array as da

__all__ = ["WindowSource", "window_source", "windowed_blocks"]


@dataclass(frozen=True, eq=False)
class WindowSource:
    """A store ``array`` that any window can be read from, and the lock ``from_array`` was given."""

    array: Any
    lock: Any = None


def _getters() -> tuple[Callable, ...]:
    from dask.array import core

    return tuple(getattr(core, n) for n in ("getter", "getter_nofancy", "getter_inline") if hasattr(core, n))


def _node_value(node: Any) -> Any:
    return node.value if type(node).__name__ == "DataNode" else node


def window_source(arr: da.Array) -> WindowSource | None:
    """The store behind ``arr`` when ``arr`` is exactly ``from_array(store)``, else ``None``.

    Recognised: a Dask array whose graph is one ``from_array`` layer (plus the
    layer holding the store) with the store's full shape.  Anything computed
    from it (sliced, cast, arithmetic) is not, and neither are NumPy arrays
    (already in memory; sending a memory map to a worker would copy it).
    """
    layers = arr.dask.layers
    layer = layers.get(arr.name)
    if layer is None or len(layers) > 2:
        return None
    try:
        task = layer[(arr.name,) + (0,) * arr.ndim]
    except Exception:  # a layer that does not expose its first block this way is not from_array's
        return None
    func, args = getattr(task, "func", None), getattr(task, "args", ())
    if func not in _getters() or len(args) < 2:
        return None
    ref = args[0]
    if type(ref).__name__ == "TaskRef":
        owner = [lay for name, lay in layers.items() if name != arr.name]
        if len(owner) != 1 or ref.key not in owner[0]:
            return None
        store = _node_value(owner[0][ref.key])
    else:
        store = _node_value(ref)
    if isinstance(store, np.ndarray) or not hasattr(store, "__getitem__"):
        return None
    if tuple(getattr(store, "shape", ())) != tuple(arr.shape):
        return None
    lock = getattr(task, "kwargs", {}).get("lock")
    return WindowSource(store, lock if lock not in (True, False) else None)


def read_window(source: WindowSource, index: tuple) -> np.ndarray:
    """``source.array[index]`` as a NumPy array, under the source's lock if it has one."""
    if source.lock is None:
        return np.asarray(source.array[index])
    with source.lock:
        return np.asarray(source.array[index])


def read_channels_last(source: WindowSource, index: tuple, channel_axis: int | None) -> np.ndarray:
    """:func:`read_window` (metered as ``read``) with the channel axis moved last (added when ``None``)."""
    with meter("read"):
        window = read_window(source, index)
    return window[..., None] if channel_axis is None else np.moveaxis(window, channel_axis, -1)


def _block_task(source: WindowSource, *deps, run: Callable, index: tuple, channel_axis: int | None,
                block_id: tuple):
    """Read one haloed window, put channels last and hand it to ``run``."""
    return run(read_channels_last(source, index, channel_axis), *deps, block_id=block_id)


def _counted_window(source: WindowSource, index: tuple, channel_axis: int | None, core: tuple[slice, slice],
                    origin: tuple[int, int], step: int, hist) -> tuple[np.ndarray, Any]:
    """Read one haloed window; it and the counts of its block's own pixels (``core`` of the window)."""
    window = read_channels_last(source, index, channel_axis)
    return window, count_pixels(window[..., core[0], core[1], :], origin, step, hist)


def _counted_block_task(counted: tuple, *deps, run: Callable, block_id: tuple):
    return run(counted[0], *deps, block_id=block_id)


def windowed_blocks(
    source: WindowSource,
    *,
    shape: tuple[int, ...],
    channel_axis: int | None,
    lead_chunks: tuple[tuple[int, ...], ...],
    by: list[int],
    bx: list[int],
    depth: tuple[int, int],
    run: Callable,
    deps: list,
    name: str,
    out_chunks: tuple[tuple[int, ...], ...],
    meta: np.ndarray,
    percentiles: Any = None,
    dtype: Any = None,
) -> da.Array:
    """A channels-last Dask array of ``run(window, *deps, block_id=...)`` per block.

    Parameters
    ----------
    source : WindowSource
        The store, in its own axis order ``shape``.
    channel_axis : int or None
        The store's channel axis; Y and X are its last two other axes.
    lead_chunks : tuple of tuples of int
        Chunks along the leading (non-spatial, non-channel) axes.
    by, bx : list of int
        Block boundaries along Y and X (input pixels).
    depth : (int, int)
        Halo read around every block, clipped at the image edge.
    run : callable
        ``run(window (..., Yw, Xw, C), *deps, block_id=(..., i, j, 0))`` returns
        the output block.
    deps : list of dask.delayed.Delayed
        Values every task receives (the model, normalisation statistics).
    name : str
        Output key name.
    out_chunks : tuple of tuples of int
        Chunks of the output, leading axes + ``(Y', X', C')``.
    meta : numpy.ndarray
        Empty array of the output's dtype and dimension.
    percentiles : Percentile, optional
        Read every window once for percentile statistics and the network
        alike: a task per block reads its window and counts the block's own
        pixels, the counts make the statistics, and ``run`` receives them
        after ``deps``.  All windows are then held in memory until the last
        is counted, so this is for images that fit (see
        :func:`pipeline.config.read_once_bytes`).
    dtype : numpy dtype
        The store's dtype (with ``percentiles``).

    Returns
    -------
    dask.array.Array
        One task per block (two with ``percentiles``); tasks share only the
        store handle and ``deps``.
    """
    import dask.array as da

    ndim = len(shape)
    spatial = [a for a in range(ndim) if a != channel_axis][-2:]
    lead_axes = [a for a in range(ndim) if a != channel_axis and a not in spatial]
    source_key = "source-" + name
    dsk: dict = {source_key: source}
    dep_keys = [d.key for d in deps]
    lead_bounds = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in lead_chunks]
    H, W = shape[spatial[0]], shape[spatial[1]]
    if percentiles is not None:
        n = math.prod(shape[a] for a in lead_axes + spatial)
        step, hist = sampling_step(n, percentiles.max_samples), _histogram_offset(np.dtype(dtype))
        read_name = "counted-window-" + name
        read_dsk: dict = {}
    for lead_idx in np.ndindex(*[len(c) for c in lead_chunks]):
        for i in range(len(by) - 1):
            ys = slice(max(0, by[i] - depth[0]), min(H, by[i + 1] + depth[0]))
            for j in range(len(bx) - 1):
                xs = slice(max(0, bx[j] - depth[1]), min(W, bx[j + 1] + depth[1]))
                index: list[slice] = [slice(None)] * ndim
                for axis, k, bounds in zip(lead_axes, lead_idx, lead_bounds):
                    index[axis] = slice(int(bounds[k]), int(bounds[k + 1]))
                index[spatial[0]], index[spatial[1]] = ys, xs
                block_id = tuple(int(k) for k in lead_idx) + (i, j, 0)
                if percentiles is None:
                    func = partial(_block_task, run=run, index=tuple(index), channel_axis=channel_axis,
                                   block_id=block_id)
                    dsk[(name,) + block_id] = (func, source_key, *dep_keys)
                    continue
                core = (slice(by[i] - ys.start, by[i + 1] - ys.start), slice(bx[j] - xs.start, bx[j + 1] - xs.start))
                # the store handle rides in each reading task: they are spread over the workers like
                # root tasks, and each block's network then runs where its window is
                read_dsk[(read_name,) + block_id] = (partial(_counted_window, source, tuple(index), channel_axis,
                                                             core, (by[i], bx[j]), step, hist),)
    if percentiles is None:
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
        return da.Array(graph, name, out_chunks, meta=meta)
    reads = HighLevelGraph.from_collections(read_name, read_dsk, dependencies=[])
    counts = [dask.delayed(operator.getitem, pure=True)(Delayed(k, reads, layer=read_name), 1) for k in read_dsk]
    stats = reduce_counts(counts, hist, percentiles.low, percentiles.high)
    deps = list(deps) + [stats]
    dep_keys = [d.key for d in deps]
    dsk = {(name,) + k[1:]: (partial(_counted_block_task, run=run, block_id=k[1:]), k, *dep_keys) for k in read_dsk}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[*deps, Delayed(read_name, reads)])
    return da.Array(graph, name, out_chunks, meta=meta)
