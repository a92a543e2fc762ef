"""Numba kernels on NumPy arrays: float32, channels-last ``(H, W, C)``.

This room imports NumPy and Numba only.  Private ``@njit`` kernels live in
``_conv``, ``_pool``, ``_resize`` and ``_pointwise``; the functions here
validate arguments, pack weights and allocate outputs.  Inputs to the spatial
kernels are *already padded*: every kernel computes a "valid" operation, and
the caller (the block executor) supplies the layer's own padding, which
differs at the image edge from inside the image.
"""

from __future__ import annotations

from .. import config as _config

_config.apply_numba_flags()  # before the first compile

import numpy as np  # noqa: E402

from ..errors import ChannelError, ShapeError  # noqa: E402
from ._activations import ACT_CODES, activation_code  # noqa: E402
from ._conv import LANES, dense_kernel, depthwise_kernel, tile_shape, transpose_kernel  # noqa: E402
from ._packing import PackedConv, aligned_empty, pack_conv, pack_conv_transpose  # noqa: E402
from ._pointwise import activation_inplace, affine_channels_inplace, softmax_channels_inplace  # noqa: E402
from ._pool import avg_pool2d as _avg_pool2d  # noqa: E402
from ._pool import max_pool2d as _max_pool2d  # noqa: E402
from ._resize import resize_linear as _resize_linear  # noqa: E402
from ._resize import resize_nearest as _resize_nearest  # noqa: E402

__all__ = [
    "ACT_CODES",
    "activation_code",
    "aligned_empty",
    "PackedConv",
    "pack_conv_weights",
    "pack_conv_transpose_weights",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "resize_nearest",
    "resize_linear",
    "activation",
    "affine_channels",
    "softmax_channels",
]


def _f32(name: str, x: np.ndarray, ndim: int) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        raise ShapeError(f"Expected {name} to be a {ndim}-D NumPy array. Got {getattr(x, 'shape', type(x))} instead.")
    return np.ascontiguousarray(x, dtype=np.float32)


def _pair(name: str, v) -> tuple[int, int]:
    a, b = (int(t) for t in v)
    if a < 1 or b < 1:
        raise ValueError(f"Expected {name} as two positive integers. Got {tuple(v)} instead.")
    return a, b


def pack_conv_weights(W: np.ndarray, groups: int = 1) -> PackedConv:
    """Pack ONNX conv weights ``(Cout, Cin/groups, KH, KW)`` once, for :func:`conv2d`.

    Returns
    -------
    PackedConv
        ``weights`` is ``(G, KH, KW, Cin/G, CogP)`` (depthwise, ``groups == Cin ==
        Cout``: ``(KH, KW, CP)``), float32, output channels zero-padded to a
        multiple of 8, 64-byte aligned.
    """
    return pack_conv(W, groups)


def pack_conv_transpose_weights(W: np.ndarray, groups: int = 1) -> PackedConv:
    """Pack ONNX transposed-conv weights ``(Cin, Cout/groups, KH, KW)`` for :func:`conv_transpose2d`."""
    return pack_conv_transpose(W, groups)


def _out_len(n: int, k: int, s: int, d: int) -> int:
    return (n - (k - 1) * d - 1) // s + 1


def _padded_bias(b, packed: PackedConv, width: int) -> np.ndarray:
    """Bias ``(Cout,)`` laid out like the padded output channels ``(width,)``."""
    cout = packed.out_channels
    if b is None:
        return np.zeros(width, np.float32)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    if b.shape[0] != cout:
        raise ShapeError(f"Expected a bias of {cout} values. Got {b.shape[0]} instead.")
    if width == cout:
        return np.ascontiguousarray(b)
    g = 1 if packed.depthwise else packed.groups
    out = np.zeros((g, width // g), np.float32)
    out[:, : cout // g] = b.reshape(g, cout // g)
    return out.reshape(-1)


def _unpadded(out: np.ndarray, packed: PackedConv) -> np.ndarray:
    """Drop the padding channels of a kernel output ``(Ho, Wo, G*CogP)``."""
    cout = packed.out_channels
    if out.shape[2] == cout:
        return out
    g = 1 if packed.depthwise else packed.groups
    ho, wo, width = out.shape
    return np.ascontiguousarray(out.reshape(ho, wo, g, width // g)[..., : cout // g]).reshape(ho, wo, cout)


def _packed(w, transpose: bool) -> PackedConv:
    maker = "pack_conv_transpose_weights" if transpose else "pack_conv_weights"
    if not isinstance(w, PackedConv) or (transpose and w.depthwise):
        raise TypeError(f"Expected weights packed by {maker}. Got {type(w).__name__} instead.")
    return w


def conv2d(
    x: np.ndarray,
    w: PackedConv,
    b: np.ndarray | None = None,
    *,
    stride=(1, 1),
    dilation=(1, 1),
    activation: str | None = None,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> np.ndarray:
    """Valid 2-D convolution of a pre-padded map, with bias and activation fused.

    Parameters
    ----------
    x : (H, W, Cin) float32 array
    w : PackedConv
        From :func:`pack_conv_weights`.
    b : (Cout,) array, optional
    stride, dilation : (int, int)
    activation : str, optional
        One of ``Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish``.
    alpha, beta : float
        LeakyRelu's slope, Clip's min/max, HardSigmoid's alpha/beta.

    Returns
    -------
    (Ho, Wo, Cout) float32 array
        ``Ho = (H - (KH-1)*dy - 1) // sy + 1``, likewise ``Wo``.
    """
    x = _f32("x", x, 3)
    w = _packed(w, transpose=False)
    sy, sx = _pair("stride", stride)
    dy, dx = _pair("dilation", dilation)
    act = activation_code(activation)
    kh, kw = w.kernel
    if x.shape[2] != w.in_channels:
        raise ChannelError(f"Expected x with {w.in_channels} channels for these weights. Got {x.shape[2]} instead.")
    ho, wo = _out_len(x.shape[0], kh, sy, dy), _out_len(x.shape[1], kw, sx, dx)
    if ho < 1 or wo < 1:
        raise ShapeError(f"Expected x at least as large as the dilated kernel {((kh - 1) * dy + 1, (kw - 1) * dx + 1)}. "
                         f"Got {x.shape[:2]} instead.")
    width = w.weights.shape[-1] * (1 if w.depthwise else w.groups)
    bias = _padded_bias(b, w, width)
    out = aligned_empty((ho, wo, width))
    taps = 0 if w.depthwise else w.kernel[1] * w.weights.shape[3]
    p, cb = tile_shape(w.weights.shape[-1] // LANES, taps_per_row=taps)
    if w.depthwise:
        if x.shape[2] != width:
            xp = np.zeros(x.shape[:2] + (width,), np.float32)
            xp[..., : x.shape[2]] = x
            x = xp
        kernel = depthwise_kernel(p, cb)
    else:
        kernel = dense_kernel(p, cb)
    kernel(x, w.weights, bias, out, sy, sx, dy, dx, act, np.float32(alpha), np.float32(beta))
    return _unpadded(out, w)


def conv_transpose2d(x: np.ndarray, w: PackedConv, *, stride=(1, 1), dilation=(1, 1)) -> np.ndarray:
    """Full transposed convolution without padding or bias.

    Parameters
    ----------
    x : (H, W, Cin) float32 array
    w : PackedConv
        From :func:`pack_conv_transpose_weights`.
    stride, dilation : (int, int)

    Returns
    -------
    ((H-1)*sy + (KH-1)*dy + 1, (W-1)*sx + (KW-1)*dx + 1, Cout) float32 array
        Output pixel ``u`` collects ``x[i] * w[j]`` for ``u = i*s + j*d``.
    """
    x = _f32("x", x, 3)
    w = _packed(w, transpose=True)
    sy, sx = _pair("stride", stride)
    dy, dx = _pair("dilation", dilation)
    if x.shape[2] != w.in_channels:
        raise ChannelError(f"Expected x with {w.in_channels} channels for these weights. Got {x.shape[2]} instead.")
    (kh, kw), (h, w_in) = w.kernel, x.shape[:2]
    shape = ((h - 1) * sy + (kh - 1) * dy + 1, (w_in - 1) * sx + (kw - 1) * dx + 1)
    if h == 0 or w_in == 0:
        return np.zeros((max(shape[0], 0), max(shape[1], 0), w.out_channels), np.float32)
    width = w.weights.shape[-1] * w.groups
    out = aligned_empty(shape + (width,))
    out[...] = 0
    p, cb = tile_shape(w.weights.shape[-1] // LANES)
    transpose_kernel(p, cb)(x, w.weights, out, sy, sx, dy, dx)
    return _unpadded(out, w)


def max_pool2d(x: np.ndarray, *, kernel, stride, dilation=(1, 1)) -> np.ndarray:
    """Valid max pooling of a map whose padding is already ``-inf``."""
    x = _f32("x", x, 3)
    ho = _out_len(x.shape[0], kernel[0], stride[0], dilation[0])
    wo = _out_len(x.shape[1], kernel[1], stride[1], dilation[1])
    out = np.empty((ho, wo, x.shape[2]), np.float32)
    _max_pool2d(x, out, kernel[0], kernel[1], stride[0], stride[1], dilation[0], dilation[1])
    return out


def avg_pool2d(x: np.ndarray, *, kernel, stride, valid=None, count_include_pad: bool = False) -> np.ndarray:
    """Valid average pooling of a zero-padded map.

    ``valid = (y0, y1, x0, x1)`` is the part of ``x`` inside the image (default:
    all of it); it sets the divisor when ``count_include_pad`` is false.
    """
    x = _f32("x", x, 3)
    if valid is None:
        valid = (0, x.shape[0], 0, x.shape[1])
    ho = _out_len(x.shape[0], kernel[0], stride[0], 1)
    wo = _out_len(x.shape[1], kernel[1], stride[1], 1)
    out = np.empty((ho, wo, x.shape[2]), np.float32)
    _avg_pool2d(x, out, kernel[0], kernel[1], stride[0], stride[1], *map(int, valid), bool(count_include_pad))
    return out


def resize_nearest(x: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """Gather ``x[iy][:, ix]`` (indices into ``x``)."""
    x = _f32("x", x, 3)
    out = np.empty((len(iy), len(ix), x.shape[2]), np.float32)
    _resize_nearest(x, out, np.ascontiguousarray(iy, np.int64), np.ascontiguousarray(ix, np.int64))
    return out


def resize_linear(x, iy0, iy1, wy, ix0, ix1, wx) -> np.ndarray:
    """Bilinear resampling with precomputed neighbours and weights (indices into ``x``)."""
    x = _f32("x", x, 3)
    out = np.empty((len(iy0), len(ix0), x.shape[2]), np.float32)
    i64, f32 = (lambda a: np.ascontiguousarray(a, np.int64)), (lambda a: np.ascontiguousarray(a, np.float32))
    _resize_linear(x, out, i64(iy0), i64(iy1), f32(wy), i64(ix0), i64(ix1), f32(wx))
    return out


def activation(x: np.ndarray, name: str, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """Apply an activation to a copy of ``x`` (any shape, channels last)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    activation_inplace(out.reshape(-1, out.shape[-1] if out.ndim else 1), activation_code(name),
                       np.float32(alpha), np.float32(beta))
    return out


def affine_channels(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, *, activation: str | None = None,
                    alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """``act(x * scale + shift)`` per channel (last axis) on a copy of ``x``."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    c = out.shape[-1]
    affine_channels_inplace(out.reshape(-1, c), np.ascontiguousarray(scale, np.float32),
                            np.ascontiguousarray(shift, np.float32), activation_code(activation),
                            np.float32(alpha), np.float32(beta))
    return out


def softmax_channels(x: np.ndarray) -> np.ndarray:
    """Softmax over the last (channel) axis, on a copy of ``x``."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    softmax_channels_inplace(out.reshape(-1, out.shape[-1]))
    return out
