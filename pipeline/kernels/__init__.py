"""Numba kernels on NumPy arrays: float32, channels-last ``(H, W, C)``.

This room imports NumPy and Numba only.  Private ``@njit`` kernels live in
``_conv``, ``_pool``, ``_resize`` and ``_pointwise``; the functions here
validate arguments, pack weights and allocate outputs.  ``conv2d``,
``max_pool2d`` and the other plain functions compute a "valid" operation on
an *already padded* map.  The ``*_window`` variants used by the block
executor read a window of an unpadded source that may leave it, and supply
the layer's padding (zeros, ``-inf``) in the kernel, so no padded copy is
made; ``conv2d_window`` also reads two sources as their channel
concatenation, so a Concat feeding a convolution is never built.
"""

from __future__ import annotations

from .. import config as _config

_config.apply_numba_flags()  # before the first compile

import numpy as np  # noqa: E402

from ..errors import ChannelError, InputError, ShapeError  # noqa: E402
from ._activations import ACT_CODES, activation_code  # noqa: E402
from ._conv import (  # noqa: E402
    L1_WEIGHT_BYTES,
    pass_channels,
    LANES,
    dense_kernel,
    winograd_kernel,
    depthwise_kernel,
    tile_shape,
    transpose_kernel,
)
from ._packing import PackedConv, aligned_empty, pack_conv, pack_conv_transpose  # noqa: E402
from ._pointwise import (  # noqa: E402
    activation_inplace,
    affine_channels_inplace,
    conv1x1_narrow,
    count_values,
    divide_by_row_sum_inplace,
    shifted_scaled_f32,
    subtract_row_max_inplace,
)
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
    "conv2d_window",
    "conv_transpose2d",
    "conv_transpose2d_window",
    "max_pool2d",
    "max_pool2d_window",
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
    kh, kw = w.kernel
    if x.shape[2] != w.in_channels:
        raise ChannelError(f"Expected x with {w.in_channels} channels for these weights. Got {x.shape[2]} instead.")
    ho, wo = _out_len(x.shape[0], kh, sy, dy), _out_len(x.shape[1], kw, sx, dx)
    if ho < 1 or wo < 1:
        raise ShapeError(f"Expected x at least as large as the dilated kernel {((kh - 1) * dy + 1, (kw - 1) * dx + 1)}. "
                         f"Got {x.shape[:2]} instead.")
    if w.depthwise:
        return _depthwise(x, w, b, (ho, wo), (sy, sx), (dy, dx), activation, alpha, beta)
    return conv2d_window([x], [(0, 0)], [w], b, (ho, wo), stride=(sy, sx), dilation=(dy, dx),
                         activation=activation, alpha=alpha, beta=beta)


#: Outputs at least this large are written around the caches by memory-bound kernels:
#: far larger than a core's L2, so the next layer would have missed them anyway.
STREAM_BYTES = 16 << 20


def _stream(out: np.ndarray) -> bool:
    """Whether a memory-bound kernel should store ``out`` non-temporally (large, vector-aligned)."""
    return out.nbytes >= STREAM_BYTES and out.ctypes.data % (4 * LANES) == 0


def _depthwise(x, w, b, shape, stride, dilation, activation, alpha, beta) -> np.ndarray:
    width = w.weights.shape[-1]
    bias = _padded_bias(b, w, width)
    out = aligned_empty(tuple(shape) + (width,))
    p, cb = tile_shape(width // LANES)
    if x.shape[2] != width:
        xp = np.zeros(x.shape[:2] + (width,), np.float32)
        xp[..., : x.shape[2]] = x
        x = xp
    depthwise_kernel(p, cb)(x, w.weights, bias, out, *stride, *dilation, activation_code(activation),
                            np.float32(alpha), np.float32(beta), _stream(out))
    return _unpadded(out, w)


def conv2d_window(
    xs,
    origins,
    ws,
    b: np.ndarray | None,
    out_shape: tuple[int, int],
    *,
    stride=(1, 1),
    dilation=(1, 1),
    activation: str | None = None,
    alpha: float = 0.0,
    beta: float = 0.0,
    alloc=None,
    channel_run: int | None = None,
    column_phase: int = 0,
) -> np.ndarray:
    """Convolution of a window that may leave its source(s), zeros outside.

    ``out[oy, ox] = act(b + sum_s sum_taps xs[s][oy_s + oy*sy + ky*dy, ox_s + ox*sx + kx*dx] @ ws[s][ky, kx])``
    with ``(oy_s, ox_s) = origins[s]`` and every source read as zero outside
    its extent: the layer's zero padding, without a padded copy.  Two sources
    are the channel concatenation of their maps (weights split along input
    channels, ``groups == 1``).  Not for depthwise weights.

    Parameters
    ----------
    xs : list of one or two (Hs, Ws, Cs) float32 arrays
    origins : list of (int, int)
        Window origin in each source's own pixel coordinates (may be negative).
    ws : list of PackedConv
        One per source, same kernel and output channels.
    b : (Cout,) array, optional
    out_shape : (Ho, Wo)
    stride, dilation, activation, alpha, beta
        As for :func:`conv2d`.
    alloc : callable, optional
        ``alloc(shape)`` returns an uninitialised 32-byte aligned C-contiguous
        float32 array for the kernel's output (default :func:`aligned_empty`).
    channel_run : int, optional
        Input channels (per group) the kernel takes in one pass over a row;
        by default all of them, unless their weights would crowd L1 (see
        ``pass_channels``).  Any value gives the same convolution.
    column_phase : int
        The column of the whole output that ``out[:, 0]`` is (only its parity
        matters).  3x3 stride-1 convolutions with packed Winograd weights
        (``w.winograd``, wide layers on AVX-512) compute output columns in
        pairs starting at even columns of the whole output, so that a pixel
        gets the same bits in every block that computes it; a block executor
        passes its window's place here.  Setting ``channel_run`` takes the
        direct kernel instead.

    Returns
    -------
    (Ho, Wo, Cout) float32 array
    """
    if not 1 <= len(xs) <= 2 or len(xs) != len(ws) or len(xs) != len(origins):
        raise ValueError(f"Expected one or two sources with one weight set and origin each. Got {len(xs)}, "
                         f"{len(ws)} and {len(origins)} instead.")
    xs = [_f32("x", x, 3) for x in xs]
    ws = [_packed(w, transpose=False) for w in ws]
    sy, sx = _pair("stride", stride)
    dy, dx = _pair("dilation", dilation)
    w = ws[0]
    for x, wi in zip(xs, ws):
        if wi.depthwise:
            raise TypeError("Expected dense or grouped weights. Got depthwise weights instead (use conv2d).")
        if x.shape[2] != wi.in_channels:
            raise ChannelError(f"Expected x with {wi.in_channels} channels for these weights. Got {x.shape[2]} instead.")
        if wi.kernel != w.kernel or wi.out_channels != w.out_channels or wi.weights.shape[-1] != w.weights.shape[-1]:
            raise ShapeError("Expected the weights of every source to share kernel and output channels.")
    if len(xs) == 2 and (ws[0].groups != 1 or ws[1].groups != 1):
        raise ShapeError(f"Expected groups == 1 with two sources. Got {ws[0].groups} and {ws[1].groups} instead.")
    ho, wo = (int(v) for v in out_shape)
    if ho < 0 or wo < 0:
        raise ShapeError(f"Expected a non-negative output shape. Got {out_shape} instead.")
    act = activation_code(activation)
    y0, x0 = (int(v) for v in origins[0])
    if (len(xs) == 1 and w.kernel == (1, 1) and (sy, sx) == (1, 1) and w.groups == 1
            and 2 * w.out_channels <= LANES and ho and wo and y0 >= 0 and x0 >= 0
            and y0 + ho <= xs[0].shape[0] and x0 + wo <= xs[0].shape[1]):
        # a network's head (16 -> 2 channels, say): padding Cout to a vector would waste most of the work
        cout = w.out_channels
        out = (alloc or aligned_empty)((ho, wo, cout))
        wn = np.ascontiguousarray(w.weights[0, 0, 0, :, :cout].T)
        bn = _padded_bias(b, w, cout)
        conv1x1_narrow(xs[0], y0, x0, wn, bn, out, act, np.float32(alpha), np.float32(beta))
        return out
    width = w.weights.shape[-1] * w.groups
    bias = _padded_bias(b, w, width)
    out = (alloc or aligned_empty)((ho, wo, width))
    if (ho and wo and len(xs) == 1 and w.winograd is not None and (sy, sx, dy, dx) == (1, 1, 1, 1)
            and channel_run is None):
        _winograd(xs[0], w, bias, out, (y0, x0), int(column_phase), act, alpha, beta)
        return _unpadded(out, w)
    taps = max(wi.kernel[1] * wi.weights.shape[3] for wi in ws)
    p, cb = tile_shape(w.weights.shape[-1] // LANES, taps_per_row=taps)
    if len(xs) == 2:
        x2, w2, (y2, x2o) = xs[1], ws[1].weights, origins[1]
    else:
        x2, w2, (y2, x2o) = _NO_SOURCE, np.zeros((1,) + w.weights.shape[1:3] + (0, w.weights.shape[4]), np.float32), (0, 0)
    all_rows = all(wi.weights[0].size // wi.weights.shape[-1] * LANES * cb * 4 <= L1_WEIGHT_BYTES for wi in ws)
    if channel_run is None:
        channel_run = 0 if all_rows else max(pass_channels(cb, w.kernel[1], wi.weights.shape[3]) for wi in ws)
    elif channel_run < 1:
        raise InputError(f"Expected channel_run >= 1. Got {channel_run} instead.")
    if ho and wo:
        dense_kernel(p, cb)(xs[0], w.weights, bias, out, sy, sx, dy, dx, act, np.float32(alpha), np.float32(beta),
                            int(y0), int(x0), x2, w2, int(y2), int(x2o), all_rows, int(channel_run))
    return _unpadded(out, w)


_NO_SOURCE = np.zeros((1, 1, 0), np.float32)


def _winograd(x, w: PackedConv, bias, out, origin, phase: int, act: int, alpha: float, beta: float) -> None:
    """Fill ``out`` with the 3x3 convolution of ``x``'s window at ``origin`` by Winograd F(2,3)."""
    wo, width = out.shape[1], out.shape[2]
    p, cb = tile_shape(width // LANES)
    pairs = (phase % 2 + wo + 1) // 2
    vbuf = aligned_empty((3 * 4 * pairs * x.shape[2],))
    mbuf = aligned_empty((4 * pairs * width,))
    winograd_kernel(p, cb)(x, w.winograd, bias, out, act, np.float32(alpha), np.float32(beta), int(origin[0]),
                           int(origin[1]), phase % 2, vbuf, mbuf)


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
    (kh, kw), (h, w_in) = w.kernel, x.shape[:2]
    shape = ((h - 1) * sy + (kh - 1) * dy + 1, (w_in - 1) * sx + (kw - 1) * dx + 1)
    if h == 0 or w_in == 0:
        if x.shape[2] != w.in_channels:
            raise ChannelError(f"Expected x with {w.in_channels} channels for these weights. Got {x.shape[2]} instead.")
        return np.zeros((max(shape[0], 0), max(shape[1], 0), w.out_channels), np.float32)
    return conv_transpose2d_window(x, w, None, (0, 0), shape, stride=(sy, sx), dilation=(dy, dx))


def conv_transpose2d_window(
    x: np.ndarray,
    w: PackedConv,
    b: np.ndarray | None,
    origin: tuple[int, int],
    out_shape: tuple[int, int],
    *,
    stride=(1, 1),
    dilation=(1, 1),
    activation: str | None = None,
    alpha: float = 0.0,
    beta: float = 0.0,
    alloc=None,
) -> np.ndarray:
    """A window of the transposed convolution of ``x``, with bias and activation fused.

    ``out[oy, ox] = act(b + sum x[i, j] @ w[ky, kx])`` over the taps with
    ``i*sy + ky*dy = origin[0] + oy`` and ``j*sx + kx*dx = origin[1] + ox``
    and ``(i, j)`` inside ``x``: ``origin`` places the window in the full
    transposed output of ``x`` (it may start before it or end after it; such
    pixels get the bias alone).

    Parameters
    ----------
    x : (H, W, Cin) float32 array
    w : PackedConv
        From :func:`pack_conv_transpose_weights`.
    b : (Cout,) array, optional
    origin : (int, int)
    out_shape : (Ho, Wo)
    stride, dilation, activation, alpha, beta
        As for :func:`conv2d`.
    alloc : callable, optional
        As for :func:`conv2d_window`.

    Returns
    -------
    (Ho, Wo, Cout) float32 array
    """
    x = _f32("x", x, 3)
    w = _packed(w, transpose=True)
    sy, sx = _pair("stride", stride)
    dy, dx = _pair("dilation", dilation)
    if x.shape[2] != w.in_channels:
        raise ChannelError(f"Expected x with {w.in_channels} channels for these weights. Got {x.shape[2]} instead.")
    ho, wo = (int(v) for v in out_shape)
    if ho < 0 or wo < 0:
        raise ShapeError(f"Expected a non-negative output shape. Got {out_shape} instead.")
    width = w.weights.shape[-1] * w.groups
    bias = _padded_bias(b, w, width)
    out = (alloc or aligned_empty)((ho, wo, width))
    p, cb = tile_shape(w.weights.shape[-1] // LANES)
    w2 = b2 = None
    if w.groups == 1 and w.kernel[1] == 2 and (sx, dx) == (2, 1):
        # 2-wide, stride-2 upsampling: both columns of an input pixel in one tile where the
        # kernel can (see transpose_kernel)
        w2 = np.ascontiguousarray(w.weights[0].transpose(0, 2, 1, 3))
        b2 = np.concatenate([bias, bias])
    if ho and wo:
        transpose_kernel(p, cb)(x, w.weights, bias, out, sy, sx, dy, dx, activation_code(activation),
                                np.float32(alpha), np.float32(beta), int(origin[0]), int(origin[1]), w2, b2)
    return _unpadded(out, w)


def max_pool2d(x: np.ndarray, *, kernel, stride, dilation=(1, 1)) -> np.ndarray:
    """Valid max pooling of a map whose padding is already ``-inf``."""
    x = _f32("x", x, 3)
    ho = _out_len(x.shape[0], kernel[0], stride[0], dilation[0])
    wo = _out_len(x.shape[1], kernel[1], stride[1], dilation[1])
    return max_pool2d_window(x, (0, 0), (ho, wo), kernel=kernel, stride=stride, dilation=dilation)


def max_pool2d_window(x: np.ndarray, origin: tuple[int, int], out_shape: tuple[int, int], *, kernel, stride,
                      dilation=(1, 1), alloc=None) -> np.ndarray:
    """Max pooling of a window of ``x`` that may leave it (``-inf`` outside).

    ``out[oy, ox] = max x[origin[0] + oy*sy + ky*dy, origin[1] + ox*sx + kx*dx]``
    over the taps inside ``x``; ``out_shape = (Ho, Wo)``.  Returns ``(Ho, Wo, C)``,
    allocated by ``alloc(shape)`` if given (as for :func:`conv2d_window`).
    """
    x = _f32("x", x, 3)
    (kh, kw), (sy, sx), (dy, dx) = _pair("kernel", kernel), _pair("stride", stride), _pair("dilation", dilation)
    out = (alloc or aligned_empty)((max(int(out_shape[0]), 0), max(int(out_shape[1]), 0), x.shape[2]))
    _max_pool2d(x, out, kh, kw, sy, sx, dy, dx, int(origin[0]), int(origin[1]))
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


#: Pixels softmax takes through its three steps at a time: a few hundred KiB, which stay in L2.
SOFTMAX_PIXELS = 1 << 14


def softmax_channels(x: np.ndarray) -> np.ndarray:
    """Softmax over the last (channel) axis, on a copy of ``x``.

    Each run of :data:`SOFTMAX_PIXELS` pixels has its row maxima subtracted,
    is exponentiated by NumPy's vectorised float32 ``exp`` (the compiled loops
    would call the scalar one per value), then divided by its row sums.
    """
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    flat = out.reshape(-1, out.shape[-1]) if out.size else out.reshape(0, 1)
    for start in range(0, flat.shape[0], SOFTMAX_PIXELS):
        part = flat[start : start + SOFTMAX_PIXELS]
        subtract_row_max_inplace(part)
        np.exp(part, out=part)
        divide_by_row_sum_inplace(part)
    return out
