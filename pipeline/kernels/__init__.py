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

from ._activations import ACT_CODES, activation_code  # noqa: E402
from ._conv import conv2d_depthwise, conv2d_grouped, conv_transpose2d_grouped  # noqa: E402
from ._pointwise import activation_inplace, affine_channels_inplace, softmax_channels_inplace  # noqa: E402
from ._pool import avg_pool2d as _avg_pool2d  # noqa: E402
from ._pool import max_pool2d as _max_pool2d  # noqa: E402
from ._resize import resize_linear as _resize_linear  # noqa: E402
from ._resize import resize_nearest as _resize_nearest  # noqa: E402

__all__ = [
    "ACT_CODES",
    "activation_code",
    "aligned_empty",
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

_ALIGN = 64


def aligned_empty(shape, dtype=np.float32, align: int = _ALIGN) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + n].view(dtype).reshape(shape)


def _f32(name: str, x: np.ndarray, ndim: int) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        raise ValueError(f"Expected {name} to be a {ndim}-D NumPy array. Got {getattr(x, 'shape', type(x))} instead.")
    return np.ascontiguousarray(x, dtype=np.float32)


def pack_conv_weights(W: np.ndarray, groups: int = 1) -> np.ndarray:
    """ONNX conv weights ``(Cout, Cin/groups, KH, KW)`` -> packed ``(G, KH, KW, Cig, Cog)``.

    Depthwise weights (``groups == Cin == Cout``) are packed as ``(KH, KW, C)``.
    The result is float32, C-contiguous and 64-byte aligned.
    """
    W = np.asarray(W, dtype=np.float32)
    cout, cig, kh, kw = W.shape
    if cout % groups:
        raise ValueError(f"Expected Cout ({cout}) divisible by groups ({groups}).")
    cog = cout // groups
    if cig == 1 and cog == 1 and groups > 1:
        packed = W[:, 0].transpose(1, 2, 0)  # (KH, KW, C)
    else:
        packed = W.reshape(groups, cog, cig, kh, kw).transpose(0, 3, 4, 2, 1)
    out = aligned_empty(packed.shape)
    out[...] = packed
    return out


def pack_conv_transpose_weights(W: np.ndarray, groups: int = 1) -> np.ndarray:
    """ONNX transposed-conv weights ``(Cin, Cout/groups, KH, KW)`` -> ``(G, KH, KW, Cig, Cog)``."""
    W = np.asarray(W, dtype=np.float32)
    cin, cog, kh, kw = W.shape
    if cin % groups:
        raise ValueError(f"Expected Cin ({cin}) divisible by groups ({groups}).")
    packed = W.reshape(groups, cin // groups, cog, kh, kw).transpose(0, 3, 4, 1, 2)
    out = aligned_empty(packed.shape)
    out[...] = packed
    return out


def _out_len(n: int, k: int, s: int, d: int) -> int:
    return (n - (k - 1) * d - 1) // s + 1


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
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
    w : packed weights from :func:`pack_conv_weights`:
        ``(G, KH, KW, Cin/G, Cout/G)`` or depthwise ``(KH, KW, C)``.
    b : (Cout,) array, optional
    stride, dilation : (int, int)
    activation : str, optional
        One of ``Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish``.

    Returns
    -------
    (Ho, Wo, Cout) float32 array
    """
    x = _f32("x", x, 3)
    depthwise = w.ndim == 3
    kh, kw = (w.shape[0], w.shape[1]) if depthwise else (w.shape[1], w.shape[2])
    cout = w.shape[2] if depthwise else w.shape[0] * w.shape[4]
    cin = w.shape[2] if depthwise else w.shape[0] * w.shape[3]
    if x.shape[2] != cin:
        raise ValueError(f"Expected x with {cin} channels for these weights. Got {x.shape[2]} instead.")
    ho = _out_len(x.shape[0], kh, stride[0], dilation[0])
    wo = _out_len(x.shape[1], kw, stride[1], dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"Input {x.shape[:2]} is smaller than the dilated kernel ({kh}, {kw}).")
    b = np.zeros(cout, np.float32) if b is None else np.ascontiguousarray(b, dtype=np.float32)
    out = aligned_empty((ho, wo, cout))
    fn = conv2d_depthwise if depthwise else conv2d_grouped
    fn(x, w, b, out, stride[0], stride[1], dilation[0], dilation[1],
       activation_code(activation), np.float32(alpha), np.float32(beta))
    return out


def conv_transpose2d(x: np.ndarray, w: np.ndarray, *, stride=(1, 1), dilation=(1, 1)) -> np.ndarray:
    """Full transposed convolution without padding or bias.

    Parameters
    ----------
    x : (H, W, Cin) float32 array
    w : ``(G, KH, KW, Cin/G, Cout/G)`` from :func:`pack_conv_transpose_weights`

    Returns
    -------
    ((H-1)*sy + (KH-1)*dy + 1, (W-1)*sx + (KW-1)*dx + 1, Cout) float32 array
        Output pixel ``u`` collects ``x[i] * w[j]`` for ``u = i*s + j*d``.
    """
    x = _f32("x", x, 3)
    G, KH, KW, cig, cog = w.shape
    if x.shape[2] != G * cig:
        raise ValueError(f"Expected x with {G * cig} channels for these weights. Got {x.shape[2]} instead.")
    H, W_, _ = x.shape
    out = np.zeros(((H - 1) * stride[0] + (KH - 1) * dilation[0] + 1,
                    (W_ - 1) * stride[1] + (KW - 1) * dilation[1] + 1, G * cog), np.float32)
    if H and W_:
        conv_transpose2d_grouped(x, w, out, stride[0], stride[1], dilation[0], dilation[1])
    return out


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
