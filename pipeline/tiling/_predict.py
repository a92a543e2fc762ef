"""``predict``: a lazy Dask array of the network's output, exact block by block."""

from __future__ import annotations

import re
import warnings
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from ..config import read_once_bytes
from ..errors import ChannelError, DTypeError, ShapeError, StorageError
from ..model import Model, load_model, tensor_scales
from ._blocks import auto_block_edge, block_bounds, parse_chunks
from ._block import _predict_block
from ._prepost import (Percentile, mask_grid, normalization_stats, parse_normalize, parse_post, post_channels,
                       post_dtype)
from ._windows import window_source, windowed_blocks

__all__ = ["predict", "as_dask_array", "normalize_channel_axis"]


def as_dask_array(image: Any) -> da.Array:
    """A Dask array from a NumPy, Dask or Zarr array, or the path/URL of a Zarr array."""
    if isinstance(image, da.Array):
        return image
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        path = str(image)
        try:
            # zarr picks the store (a LocalStore for a local path: cheaper to open, tokenize and ship than
            # the fsspec wrapper dask.array.from_zarr makes of a path)
            return da.from_zarr(zarr.open_array(store=path, mode="r"))
        except Exception as exc:  # zarr raises several types for a missing or non-array path
            raise StorageError(f"Cannot open {path!r} as a Zarr array: {exc}.") from None
    mod = type(image).__module__
    if mod.startswith("zarr"):
        return da.from_zarr(image)
    if mod.startswith("xarray"):
        return as_dask_array(image.data)
    arr = np.asarray(image) if not hasattr(image, "shape") else image
    return da.from_array(arr, chunks="auto", asarray=True)


def normalize_channel_axis(channel_axis: int | None, ndim: int) -> int | None:
    """``channel_axis`` as a non-negative index, checked against ``ndim``."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
        raise ChannelError(f"Expected channel_axis to be an int or None. Got {channel_axis!r} instead.")
    if not -ndim <= channel_axis < ndim:
        raise ChannelError(
            f"channel_axis {channel_axis} is out of range for an image with {ndim} dimensions; "
            f"expected -{ndim} <= channel_axis < {ndim}."
        )
    return int(channel_axis) % ndim


def _check_image(arr: da.Array, channel_axis: int | None) -> None:
    if arr.dtype.kind not in "buif":
        raise DTypeError(f"Expected a numeric image (bool, int, uint or float). Got dtype {arr.dtype} instead.")
    needed = 2 if channel_axis is None else 3
    if arr.ndim < needed:
        what = "(Y, X)" if channel_axis is None else "(..., Y, X) plus a channel axis"
        raise ShapeError(f"Expected an image with at least {needed} dimensions {what}. Got shape {arr.shape} instead.")
    if 0 in arr.shape:
        raise ShapeError(f"Expected a non-empty image. Got shape {arr.shape} instead.")


def _task_name(model: Model) -> str:
    return "predict-" + (re.sub(r"[^A-Za-z0-9_.]+", "_", model.name).strip("_") or "model")


def _bytes_per_pixel(model: Model) -> float:
    """Rough float32 bytes per input pixel of a block: input, two largest activations, output."""
    geo = model.geometry
    scales = tensor_scales(model)
    sizes = sorted(
        (model.channels[t] * float(s[0] * s[1]) for t, s in scales.items() if s is not None), reverse=True
    )
    out = model.output_channels * float(geo.scale[0] * geo.scale[1]) if geo.local else 0.0
    return 4.0 * (model.input_channels + sum(sizes[:2]) + out) * 1.5


def _bounds_to_chunks(bounds: list[int]) -> tuple[int, ...]:
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def predict(
    image: Any,
    model: Model | str,
    *,
    channel_axis: int | None = None,
    chunks: int | tuple[int, int] | None = None,
    normalize: Any = None,
    mask: Any = None,
    fill_value: float = 0,
    post: Any = None,
) -> da.Array:
    """Run ``model`` over ``image`` block by block; a lazy Dask array of the output.

    The result equals the network applied to the whole image at once, at the
    image border too: every block is computed with the halo its receptive
    field needs, and where a layer's window leaves the image the layer's own
    padding is reproduced.

    Parameters
    ----------
    image : (..., Y, X) or (..., Y, X, C)-like array, or path
        NumPy, Dask or Zarr array, or the path/URL of a Zarr array.  The two
        last non-channel axes are Y and X; leading axes (time, z) are mapped
        plane by plane.
    model : Model or path
        A :class:`pipeline.Model` or a path for :func:`pipeline.load_model`.
    channel_axis : int, optional
        Axis of ``image`` holding channels; ``None`` means one channel.
    chunks : int or (int, int), optional
        Compute block size ``(y, x)`` in input pixels.  Blocks are rounded up
        to a multiple of the model's stride and to at least the halo; a
        ragged last block smaller than the halo joins its neighbour.  With
        ``None`` the largest block within the per-task memory budget
        (``PIPELINE_BLOCK_MEMORY``, 512 MiB, counting the network's largest
        activations) is used, capped at ``PIPELINE_MAX_BLOCK_SIZE`` (2048).
    normalize : optional
        Input normalisation computed once over the whole image, never per
        block: ``True`` or ``"percentile"`` (1st and 99.8th percentiles per
        channel), ``pipeline.Percentile(low, high, reference=coarse_level)``
        (statistics from a coarse pyramid level, or from a regular subsample
        of at most 16 M pixels), ``"percentile:1:99.8"``, or fixed
        ``("range", lo, hi)``.
    mask : (y, x) bool array, optional
        Low-resolution mask over the image extent (NumPy, Dask or Zarr).
        Blocks that no True pixel touches are neither read nor computed; their
        output is ``fill_value``.
    fill_value : number
        Output value of masked-out blocks.
    post : optional
        A step over the output channels, run inside each block's task:
        ``"softmax"``, ``"argmax"`` (int32, one channel), ``("topk", k)``
        (int32 indices of the k largest channels, descending, ties to the
        lower index) or ``("threshold", t)`` (uint8, ``output > t`` per channel).

    Returns
    -------
    dask.array.Array (float32 unless ``post`` says otherwise), or xarray.DataArray
        An ``xarray.DataArray`` input (dims named ``y``, ``x`` and ``c``,
        others mapped plane by plane) gives a DataArray with its coordinates
        kept (spatial ones rescaled by the output scale).  With ``channel_axis=None``: ``(..., C, Y', X')``, channel-first like
        OME-Zarr.  Otherwise the output's channels sit on ``channel_axis``.
        ``Y', X'`` follow the model's output scale; spatial chunks are the
        compute blocks and channels are one chunk.

    Raises
    ------
    DTypeError, ShapeError, ChannelError
        Non-numeric dtype, too few dimensions or an image size the model
        cannot take, channel axis out of range or channel count not the
        model's.

    Notes
    -----
    Memory: when ``image`` is a store (a Zarr array or its path, the ``data``
    of :func:`pipeline.io.open_image`, or ``dask.array.from_array`` over any
    sliceable array other than NumPy), each block's task reads its own haloed
    window from the store, so no block waits on another and a worker holds
    only the blocks in flight, whatever the image size.  The exception is
    percentile normalisation of an image of at most
    ``PIPELINE_READ_ONCE_BYTES`` (512 MiB): every block needs statistics of
    every pixel, so the windows are read (and counted) first and held until
    the statistics are known, instead of a separate counting pass reading the
    image twice.  Other Dask arrays
    (computed ones) hand halos between neighbouring blocks with Dask's
    overlap, which keeps about a row of blocks alive; write such an input to
    Zarr first when it is wider than a few dozen blocks.

    Image sizes: any size the network itself accepts is accepted.  Networks
    whose skip connections join maps of different resolutions (U-Nets) need
    sizes that are multiples of their stride; other sizes raise
    :class:`ShapeError` naming the multiple (pad the image yourself if you
    want that behaviour).  Non-local networks (global pooling) run each block
    as an image of its own and warn that the result depends on the block size.

    Examples
    --------
    >>> import numpy as np, pipeline
    >>> from pipeline.model import Model, Node
    >>> blur = Model([Node("c", "Conv", ["input"], {"pads": 1}, {"W": np.full((1, 1, 3, 3), 1 / 9)})],
    ...              input_channels=1, name="blur")
    >>> out = pipeline.predict(np.ones((100, 80)), blur, chunks=32)
    >>> out.shape, out.chunks[1]
    ((1, 100, 80), (32, 32, 32, 4))
    >>> float(out[0, 50, 40].compute()), round(float(out[0, 0, 0].compute()), 4)
    (1.0, 0.4444)
    """
    if type(image).__module__.startswith("xarray"):
        from ._xarray import predict_xarray

        return predict_xarray(image, model, chunks=chunks, normalize=normalize, mask=mask,
                              fill_value=fill_value, post=post)
    model = load_model(model)
    norm = parse_normalize(normalize)
    post_ = parse_post(post)
    arr = as_dask_array(image)
    ch = normalize_channel_axis(channel_axis, arr.ndim)
    _check_image(arr, ch)
    x = arr[..., None] if ch is None else da.moveaxis(arr, ch, -1)
    if x.shape[-1] != model.input_channels:
        where = "a single-channel image" if ch is None else f"{x.shape[-1]} channels on axis {channel_axis}"
        raise ChannelError(
            f"Model {model.name!r} expects {model.input_channels} input channel(s); got {where}."
            + (" Pass channel_axis=." if ch is None else "")
        )
    H, W = int(x.shape[-3]), int(x.shape[-2])
    geo = model.geometry
    try:
        cout, Ho, Wo = model.output_shape(H, W)
    except ShapeError as exc:
        raise ShapeError(
            f"Model {model.name!r} cannot take an image of {H} x {W}: {exc} "
            f"Use sizes that are multiples of {geo.stride[0]} x {geo.stride[1]}."
        ) from None

    out_c = post_channels(post_, cout)
    out_dtype = post_dtype(post_)
    source = window_source(arr)
    # percentiles of a stored image that fits: its windows are read once, for the statistics and the network
    read_once = (source is not None and isinstance(norm, Percentile) and norm.reference is None
                 and arr.nbytes <= read_once_bytes())
    stats = None
    if norm is not None and not read_once:
        stats = normalization_stats(x, norm, reference_channel_axis=ch, image=arr)
    req = parse_chunks(chunks)
    depth = geo.depth if geo.local else (0, 0)
    if req is None:
        edge = auto_block_edge((H, W), stride=geo.stride, depth=depth, bytes_per_pixel=_bytes_per_pixel(model))
        req = (edge, edge)
    by = block_bounds(H, req[0], stride=geo.stride[0], depth=depth[0])
    bx = block_bounds(W, req[1], stride=geo.stride[1], depth=depth[1])
    dy = depth[0] if len(by) > 2 else 0
    dx = depth[1] if len(bx) > 2 else 0

    if geo.local:
        oby = [min(int(b * geo.scale[0]), Ho) for b in by[:-1]] + [Ho]
        obx = [min(int(b * geo.scale[1]), Wo) for b in bx[:-1]] + [Wo]
    else:
        warnings.warn(
            f"Model {model.name!r} is not local (global pooling): each block is run as an image of its own, "
            "so the result depends on the block size. Use one block covering the image for the whole-image result.",
            UserWarning,
            stacklevel=2,
        )
        oby, obx = [0], [0]
        for a, b in zip(by[:-1], by[1:]):
            oby.append(oby[-1] + model.output_shape(b - a, bx[1] - bx[0])[1])
        for a, b in zip(bx[:-1], bx[1:]):
            obx.append(obx[-1] + model.output_shape(by[1] - by[0], b - a)[2])

    lead = x.ndim - 3
    out_chunks = x.chunks[:lead] + (_bounds_to_chunks(oby), _bounds_to_chunks(obx), (out_c,))
    deps = [dask.delayed(model, pure=True, traverse=False)] + ([stats] if stats is not None else [])
    run = partial(_predict_block, by=tuple(by), bx=tuple(bx), oby=tuple(oby), obx=tuple(obx), depth=(dy, dx),
                  image_size=(H, W), local=geo.local, post=post_, norm=norm)
    meta = np.empty((0,) * x.ndim, out_dtype)
    name = f"{_task_name(model)}-{tokenize(arr.name, ch, model.fingerprint, by, bx, post_, norm, [d.key for d in deps])}"
    if source is not None:
        # each block reads its own haloed window from the store: no task depends on a neighbour
        out = windowed_blocks(source, shape=arr.shape, channel_axis=ch, lead_chunks=x.chunks[:lead], by=by, bx=bx,
                              depth=(dy, dx), run=run, deps=deps, name=name, out_chunks=out_chunks, meta=meta,
                              percentiles=norm if read_once else None, dtype=arr.dtype)
    else:
        x = x.rechunk(x.chunks[:lead] + (_bounds_to_chunks(by), _bounds_to_chunks(bx), (x.shape[-1],)))
        if dy or dx:
            x = da.overlap.overlap(
                x,
                depth={**{i: 0 for i in range(lead)}, lead: dy, lead + 1: dx, lead + 2: 0},
                boundary={i: "none" for i in range(x.ndim)},
                allow_rechunk=False,
            )
        out = da.map_blocks(run, x, *deps, chunks=out_chunks, dtype=out_dtype, meta=meta, name=name)
    if mask is not None:
        out = _apply_mask(out, mask_grid(mask, (H, W), by, bx), fill_value)
    return da.moveaxis(out, -1, lead if ch is None else ch)


def _apply_mask(out: da.Array, keep: np.ndarray, fill_value) -> da.Array:
    """Replace the blocks ``keep`` rules out by constant blocks that depend on nothing.

    The dropped blocks' tasks (and the reads of input chunks only they
    needed) are culled from the graph when the result is computed.
    """
    from dask.highlevelgraph import HighLevelGraph

    name = "masked-" + tokenize(out.name, keep.tobytes(), fill_value)
    dsk = {}
    for idx in np.ndindex(*out.numblocks):
        i, j = idx[-3], idx[-2]
        if keep[i, j]:
            dsk[(name,) + idx] = (out.name,) + idx
        else:
            shape = tuple(c[k] for c, k in zip(out.chunks, idx))
            dsk[(name,) + idx] = (np.full, shape, fill_value, out.dtype)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[out])
    return da.Array(graph, name, out.chunks, meta=out._meta)
