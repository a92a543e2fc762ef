"""Stitching block-local labels into one labelling: the NumPy/SciPy half.

Each block is labelled on its own (labels ``1..n`` local to the block).  A
block seen with a one-pixel halo of its neighbours' local labels tells which
of its objects touch which of theirs (:func:`block_links`).  One small task
gathers the counts and links of every block, numbers the block-local objects
one after another and joins linked ones with connected components
(:func:`resolve_links`).  Each block is then relabelled by a lookup
(:func:`apply_lookup`).  Only counts, links and one lookup table move between
tasks, never a block.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sparse
from scipy.sparse import csgraph

__all__ = ["label_block", "block_links", "resolve_links", "apply_lookup", "neighbour_offsets"]


def label_block(foreground: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Connected components of one block: int32 labels ``0`` (background), ``1..n``."""
    labels, _ = ndi.label(foreground, structure=structure, output=np.int32)
    return labels


def neighbour_offsets(structure: np.ndarray) -> list[tuple[int, ...]]:
    """The non-zero offsets ``s`` (entries -1, 0, 1) with ``structure[1 + s]`` true."""
    centre = np.ones(structure.ndim, dtype=int)
    return [tuple(int(v) for v in idx - centre) for idx in np.argwhere(structure) if np.any(idx != centre)]


def _axis_ranges(step: int, axis_start: int, axis_stop: int, extent: int, crossing: str) -> tuple[int, int] | None:
    """Interior positions ``p`` on one axis for neighbour step ``step``.

    ``crossing`` is ``"must"`` (``p + step`` leaves the interior into the
    halo), ``"never"`` (``p + step`` stays inside the interior) or ``"any"``
    (``p + step`` anywhere inside the haloed block).  ``None`` when empty.
    """
    if crossing == "must":
        if step == 1 and axis_stop < extent:
            return axis_stop - 1, axis_stop
        if step == -1 and axis_start > 0:
            return axis_start, axis_start + 1
        return None
    lo, hi = (axis_start, axis_stop) if crossing == "never" else (0, extent)
    start, stop = max(axis_start, lo - step), min(axis_stop, hi - step)
    return (start, stop) if start < stop else None


def block_links(
    haloed: np.ndarray,
    *,
    block_index: tuple[int, ...],
    numblocks: tuple[int, ...],
    depth: tuple[int, ...],
    offsets: list[tuple[int, ...]],
) -> tuple[int, np.ndarray]:
    """Object count of one block and the links of its objects to later blocks' objects.

    Parameters
    ----------
    haloed : (..., Y + halo, X + halo) int array
        Local labels of the block with a halo of ``depth`` pixels on each side
        that has a neighbouring block, holding the neighbours' local labels.
    block_index, numblocks : tuple of int
        Position of the block in the block grid and the grid's shape.
    depth : tuple of int
        Halo width per axis: 1 on axes along which pixels connect, else 0.
    offsets : list of tuple
        Neighbour offsets (see :func:`neighbour_offsets`).

    Returns
    -------
    count : int
        Number of objects in the block (labels ``1..count``).
    links : (K, 3) int64 array
        Rows ``(own label, linear index of the other block, its label)`` for
        every pair of touching objects whose other block comes later in C
        order; each pair once.
    """
    interior = tuple(
        slice(d if i > 0 else 0, n - (d if i < nb - 1 else 0))
        for n, d, i, nb in zip(haloed.shape, depth, block_index, numblocks)
    )
    core = haloed[interior]
    count = int(core.max()) if core.size else 0
    own = int(np.ravel_multi_index(block_index, numblocks))
    found = [np.empty((0, 3), dtype=np.int64)]
    if count:
        for step in offsets:
            found.extend(_links_for_step(haloed, interior, step, block_index, numblocks, own))
    links = np.concatenate(found)
    if len(links):
        links = np.unique(links, axis=0)
    return count, links


def _links_for_step(haloed, interior, step, block_index, numblocks, own):
    """Links found through one neighbour offset ``step``, region by region.

    The interior pixels whose neighbour ``p + step`` lies in the halo form
    thin slabs; they are split by the first axis on which ``p + step``
    leaves the interior, so that each pixel is visited once.
    """
    ndim = haloed.ndim
    moving = [a for a in range(ndim) if step[a] != 0]
    for first in moving:
        ranges = []
        for a in range(ndim):
            if a == first:
                mode = "must"
            elif a in moving and a < first:
                mode = "never"
            else:
                mode = "any"
            r = _axis_ranges(step[a], interior[a].start, interior[a].stop, haloed.shape[a], mode)
            if r is None:
                break
            ranges.append(r)
        else:
            yield _links_in_region(haloed, interior, step, ranges, block_index, numblocks, own)


def _links_in_region(haloed, interior, step, ranges, block_index, numblocks, own):
    src = tuple(slice(a, b) for a, b in ranges)
    dst = tuple(slice(a + s, b + s) for (a, b), s in zip(ranges, step))
    mine, theirs = haloed[src], haloed[dst]
    hit = np.nonzero((mine > 0) & (theirs > 0))
    if not len(hit[0]):
        return np.empty((0, 3), dtype=np.int64)
    other = []
    for a, coords in enumerate(hit):
        target = coords + ranges[a][0] + step[a]
        shift = np.where(target < interior[a].start, -1, np.where(target >= interior[a].stop, 1, 0))
        other.append(block_index[a] + shift)
    other_linear = np.ravel_multi_index(tuple(other), numblocks)
    later = other_linear > own
    return np.stack(
        [mine[hit][later].astype(np.int64), other_linear[later].astype(np.int64), theirs[hit][later].astype(np.int64)],
        axis=1,
    )


def resolve_links(per_block: list[tuple[int, np.ndarray]], *, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Final labels of every block-local object.

    Parameters
    ----------
    per_block : list of (count, links)
        :func:`block_links` of every block, in C order of the block grid.
    dtype : numpy dtype
        Integer dtype of the final labels.

    Returns
    -------
    starts : (B,) int64 array
        Index of each block's first object in ``table``.
    table : (M,) array of ``dtype``
        Final label of block-local object ``l`` of block ``b`` at
        ``table[starts[b] + l - 1]``; labels run ``1..N`` without gaps.
    """
    counts = np.array([count for count, _ in per_block], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return starts, np.zeros(0, dtype=dtype)
    rows, cols = [], []
    for b, (_, links) in enumerate(per_block):
        if len(links):
            rows.append(starts[b] + links[:, 0] - 1)
            cols.append(starts[links[:, 1]] + links[:, 2] - 1)
    if rows:
        u, v = np.concatenate(rows), np.concatenate(cols)
    else:
        u = v = np.zeros(0, dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(total, total)).tocsr()
    _, component = csgraph.connected_components(graph, directed=False)
    return starts, (component + 1).astype(dtype)


def apply_lookup(local: np.ndarray, resolved: tuple[np.ndarray, np.ndarray], *, grid, block_info=None):
    """Replace a block's local labels by their final labels (0 stays 0)."""
    starts, table = resolved
    index = block_info[0]["chunk-location"]
    start = starts[np.ravel_multi_index(index, grid)]
    out = np.zeros(local.shape, dtype=table.dtype)
    fg = local > 0
    out[fg] = table[start + local[fg].astype(np.int64) - 1]
    return out
