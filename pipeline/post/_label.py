"""``label``: instance labels of a probability map, one label per object across blocks."""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..errors import ChannelError, InputError
from ._inputs import check_numeric, check_spatial, parse_channel_axis, parse_connectivity, structure_for, to_dask
from ._stitch import apply_lookup, block_links, label_block, neighbour_offsets, resolve_links

__all__ = ["label", "foreground"]


def label(
    probabilities: Any,
    *,
    threshold: float = 0.5,
    channel_axis: int | None = None,
    channel: int | None = None,
    connectivity: int | None = 1,
    per_plane: bool = False,
    chunks: Any = None,
) -> da.Array:
    """Connected objects of a probability map, labelled ``1..N`` across the whole image.

    Blocks are labelled independently; objects cut by block borders are then
    joined through the one-pixel faces between neighbouring blocks, so every
    object carries one label however the image is chunked.  The result equals
    ``skimage.measure.label`` of the whole foreground up to the numbering of
    the objects.  Nothing is computed until the result is.

    Parameters
    ----------
    probabilities : (..., Y, X) or, with ``channel_axis``, (..., C, ..., Y, X) array
        NumPy, Dask, Zarr or xarray array.  Bool input is the foreground itself.
    threshold : float
        A pixel is foreground where its probability is ``> threshold``.
    channel_axis : int, optional
        Axis of ``probabilities`` holding classes.  With ``channel=None`` the
        foreground is where the most probable class is not class 0
        (background); otherwise ``probabilities`` has no channel axis.
    channel : int, optional
        With ``channel_axis``: threshold this one channel instead.
    connectivity : int, optional
        Largest number of axes along which two neighbours may differ by one
        step, as in scikit-image: in 2-D 1 (4-neighbourhood) or 2 (8); in 3-D
        1, 2 or 3.  ``None`` means full.
    per_plane : bool
        If true, only the last two axes connect: each plane of the leading
        axes (time, z) is labelled on its own, labels still unique over the
        whole array.  If false (default), all spatial axes connect (3-D
        components of a z stack).
    chunks : optional
        Block shape of the spatial axes (Dask ``chunks`` syntax); default: the
        chunks of a Dask input, ``"auto"`` otherwise.

    Returns
    -------
    labels : (..., Y, X) dask.array.Array of int32 (int64 for images of 2**31 pixels or more)
        ``0`` is background; objects are ``1..N`` with no gaps, chunked like
        the foreground.

    Raises
    ------
    DTypeError, ShapeError, ChannelError, InputError
        Non-numeric input, fewer than two spatial axes or an empty axis,
        channel axis or channel out of range, bad threshold or connectivity.

    Notes
    -----
    Memory: each block is labelled in its own task; the block-local labels
    (int32) stay on the worker that made them until one small task has
    joined the per-block object counts and face links, then each block is
    relabelled by a lookup (``map_blocks``).  Input blocks are read once.

    Examples
    --------
    >>> import numpy as np
    >>> from pipeline.post import label
    >>> p = np.zeros((4, 6)); p[1:3, 1:5] = 0.9
    >>> label(p, chunks=2).compute()
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]], dtype=int32)
    """
    fg = foreground(probabilities, threshold=threshold, channel_axis=channel_axis, channel=channel, chunks=chunks)
    rank = 2 if per_plane else fg.ndim
    structure = structure_for(fg.ndim, parse_connectivity(connectivity, rank), per_plane=bool(per_plane))
    return label_foreground(fg, structure)


def foreground(
    probabilities: Any, *, threshold: float, channel_axis: int | None, channel: int | None, chunks: Any
) -> da.Array:
    """The lazy bool foreground of :func:`label`'s input, channel axis removed."""
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not np.isfinite(threshold):
        raise InputError(f"Expected threshold to be a finite number. Got {threshold!r} instead.")
    arr = to_dask(probabilities, name="probabilities")
    check_numeric(arr, name="probabilities")
    ch = parse_channel_axis(channel_axis, arr.ndim, name="probabilities")
    if ch is None:
        if channel is not None:
            raise ChannelError(f"Expected channel_axis to be given with channel={channel!r}. Got channel_axis=None instead.")
        fg = arr if arr.dtype == bool else arr > threshold
    else:
        fg = _foreground_from_channels(arr, ch, channel, threshold)
    check_spatial(fg.shape, name="probabilities (without channels)")
    return fg if chunks is None else fg.rechunk(chunks)


def _foreground_from_channels(arr: da.Array, axis: int, channel: int | None, threshold: float) -> da.Array:
    n = arr.shape[axis]
    if channel is None:
        if n < 2:
            raise ChannelError(
                f"Expected at least 2 channels on axis {axis} to take the argmax against background channel 0. "
                f"Got {n} instead; pass channel=0 to threshold it."
            )
        return da.argmax(arr.rechunk({axis: -1}), axis=axis) != 0
    if isinstance(channel, bool) or not isinstance(channel, numbers.Integral) or not -n <= channel < n:
        raise ChannelError(f"Expected channel in [-{n}, {n}) for {n} channels on axis {axis}. Got {channel!r} instead.")
    picked = da.take(arr, int(channel) % n, axis=axis)
    return picked if picked.dtype == bool else picked > threshold


def label_dtype(shape: tuple[int, ...]) -> np.dtype:
    """int32 while every pixel could be its own object without overflow, else int64."""
    return np.dtype(np.int32) if int(np.prod(shape, dtype=np.int64)) < 2**31 - 1 else np.dtype(np.int64)


def label_foreground(fg: da.Array, structure: np.ndarray) -> da.Array:
    """Labels ``1..N`` of the connected components of a lazy bool array, stitched across blocks.

    Four layers, each one task per block except the third: label each block
    on its own; find, in each block seen with a one-pixel halo of its
    neighbours, which of its objects touch which of theirs; join all counts
    and links in one task; relabel each block by lookup.
    """
    out_dtype = label_dtype(fg.shape)
    token = tokenize(fg, structure)
    ndim = fg.ndim
    local = fg.map_blocks(
        label_block, structure, dtype=np.int32, meta=np.empty((0,) * ndim, np.int32), name=f"label-local-{token}"
    )
    offsets = neighbour_offsets(structure)
    depth = tuple(int(any(step[a] != 0 for step in offsets)) for a in range(ndim))
    haloed = da.overlap.overlap(local, depth=dict(enumerate(depth)), boundary="none")
    links = haloed.map_blocks(
        _links_of_block,
        grid=local.numblocks,
        depth=depth,
        offsets=offsets,
        chunks=tuple((1,) * n for n in local.numblocks),
        dtype=object,
        meta=np.empty((0,) * ndim, object),
        name=f"label-links-{token}",
    )
    grid_index = "".join(chr(ord("a") + a) for a in range(ndim))
    resolved = da.blockwise(
        _resolve_grid, "", links, grid_index, concatenate=True, out_dtype=out_dtype,
        dtype=object, meta=np.empty((), object), name=f"label-resolve-{token}",
    )
    return local.map_blocks(
        _relabel_block,
        resolved,
        grid=local.numblocks,
        dtype=out_dtype,
        meta=np.empty((0,) * ndim, out_dtype),
        name=f"label-{token}",
    )


def _links_of_block(haloed: np.ndarray, *, grid, depth, offsets, block_info=None) -> np.ndarray:
    """:func:`block_links` of one block, wrapped in a ``(1,) * ndim`` object array (one grid cell)."""
    cell = np.empty((1,) * haloed.ndim, dtype=object)
    index = tuple(block_info[0]["chunk-location"])
    cell[(0,) * haloed.ndim] = block_links(haloed, block_index=index, numblocks=grid, depth=depth, offsets=offsets)
    return cell


def _resolve_grid(cells: np.ndarray, *, out_dtype) -> np.ndarray:
    """:func:`resolve_links` over the grid of every block's cell, as a 0-d object array."""
    out = np.empty((), dtype=object)
    out[()] = resolve_links(list(cells.ravel()), dtype=out_dtype)
    return out


def _relabel_block(local: np.ndarray, resolved: np.ndarray, *, grid, block_info=None) -> np.ndarray:
    return apply_lookup(local, resolved[()], grid=grid, block_info=block_info)
