"""``predict``: a lazy Dask array of the network's output, exact block by block."""

from __future__ import annotations

import re
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..errors import ChannelError, DTypeError, ExecutionError, ShapeError, StorageError
from ..model import Model, get_plan, load_model
from ._blocks import auto_block_edge, block_bounds, parse_chunks

__all__ = ["predict", "as_dask_array", "normalize_channel_axis"]


def as_dask_array(image: Any) -> da.Array:
    """A Dask array from a NumPy, Dask or Zarr array, or the path/URL of a Zarr array."""
    if isinstance(image, da.Array):
        return image
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        path = str(image)
        try:
            return da.from_zarr(path)
        except Exception as exc:  # zarr raises several types for a missing or non-array path
            raise StorageError(f"Cannot open {path!r} as a Zarr array: {exc}.") from None
    mod = type(image).__module__
    if mod.startswith("zarr"):
        return da.from_zarr(image)
    if mod.startswith("xarray"):
        raise TypeError("xarray.DataArray inputs go through pipeline.predict, which keeps coordinates.")
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
    from ..model._geometry import _scales

    scales = _scales(model)
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

    Returns
    -------
    dask.array.Array of float32
        With ``channel_axis=None``: ``(..., C, Y', X')``, channel-first like
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
    model = load_model(model)
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
    x = x.rechunk(x.chunks[:lead] + (_bounds_to_chunks(by), _bounds_to_chunks(bx), (x.shape[-1],)))
    if dy or dx:
        x = da.overlap.overlap(
            x,
            depth={**{i: 0 for i in range(lead)}, lead: dy, lead + 1: dx, lead + 2: 0},
            boundary={i: "none" for i in range(x.ndim)},
            allow_rechunk=False,
        )
    out_chunks = x.chunks[:lead] + (_bounds_to_chunks(oby), _bounds_to_chunks(obx), (cout,))
    model_key = dask.delayed(model, pure=True, traverse=False)
    name = _task_name(model)
    out = da.map_blocks(
        _predict_block,
        x,
        model_key,
        by=tuple(by),
        bx=tuple(bx),
        oby=tuple(oby),
        obx=tuple(obx),
        depth=(dy, dx),
        image_size=(H, W),
        local=geo.local,
        chunks=out_chunks,
        dtype=np.float32,
        meta=np.empty((0,) * x.ndim, np.float32),
        name=f"{name}-{tokenize(x, model.fingerprint, by, bx)}",
    )
    return da.moveaxis(out, -1, lead if ch is None else ch)


def _predict_block(block, model, *, by, bx, oby, obx, depth, image_size, local, block_id=None):
    """Compute one output block (all leading planes) from one overlapped input block."""
    i, j = block_id[-3], block_id[-2]
    y0, y1, x0, x1 = by[i], by[i + 1], bx[j], bx[j + 1]
    ay, ax = max(0, y0 - depth[0]), max(0, x0 - depth[1])
    expect = (min(image_size[0], y1 + depth[0]) - ay, min(image_size[1], x1 + depth[1]) - ax)
    if block.shape[-3:-1] != expect:
        raise ExecutionError(
            f"Internal error: block {block_id} has spatial shape {block.shape[-3:-1]}, expected {expect}."
        )
    plan = get_plan(model)
    out_range = ((oby[i], oby[i + 1]), (obx[j], obx[j + 1]))
    lead_shape = block.shape[:-3]
    out = np.empty(lead_shape + (out_range[0][1] - out_range[0][0], out_range[1][1] - out_range[1][0],
                                 model.output_channels), np.float32)
    for idx in np.ndindex(*lead_shape):
        plane = np.asarray(block[idx], dtype=np.float32)
        if local:
            out[idx] = plan.run(plane, origin=(ay, ax), image_size=image_size, out_range=out_range)
        else:
            core = plane[y0 - ay : y1 - ay, x0 - ax : x1 - ax]
            out[idx] = plan.run(np.ascontiguousarray(core))
    return out
