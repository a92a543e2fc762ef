"""An independent whole-image reference interpreter of a :class:`pipeline.model.Model`.

Written from the ONNX operator specification (opset 17) with NumPy only, in
float64, on feature maps ``(C, H, W)`` (NCHW without the batch axis) and
weights in ONNX layout.  It reads the graph (``model.nodes``, ``node.op``,
``node.inputs``, ``node.attrs``, ``node.weights``, ``model.input_name``,
``model.output``) and nothing else of ``pipeline``: no kernels, no shape
inference, no geometry, no executor.  Its trustworthiness comes from
``tests/test_naive.py``, which checks it against onnxruntime and scipy.ndimage.

Each op has its own plain function so that a Numba kernel can be checked
against it directly.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "run_naive",
    "same_pads",
    "conv2d",
    "conv_transpose2d",
    "dense",
    "batch_norm",
    "relu",
    "leaky_relu",
    "clip",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "hard_swish",
    "softmax",
    "identity",
    "max_pool",
    "average_pool",
    "global_average_pool",
    "global_max_pool",
    "resize",
    "pad",
    "binary",
    "concat",
]

def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- padding
def same_pads(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
              mode: str) -> tuple[int, int, int, int]:
    """Explicit ``(top, left, bottom, right)`` pads of ONNX ``auto_pad`` SAME_UPPER / SAME_LOWER.

    ONNX: the output is ``ceil(n / s)``; the total padding is whatever makes
    that output fit, split evenly with the odd pixel at the end (SAME_UPPER,
    ``mode="same"``) or at the beginning (SAME_LOWER, ``mode="same_lower"``).
    """
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        out = math.ceil(n / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        if mode == "same":
            b = total // 2
        elif mode == "same_lower":
            b = total - total // 2
        else:
            raise ValueError(f"Expected pads mode 'same' or 'same_lower'. Got {mode!r} instead.")
        begin.append(b)
        end.append(total - b)
    return (begin[0], begin[1], end[0], end[1])


def _explicit(pads, size, kernel, stride, dilation) -> tuple[int, int, int, int]:
    if isinstance(pads, str):
        return same_pads(size, kernel, stride, dilation, pads)
    return tuple(int(p) for p in pads)  # type: ignore[return-value]


def _padded(x: np.ndarray, pads: Sequence[int], value: float) -> np.ndarray:
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (t, b), (l, r)), mode="constant", constant_values=value)


def _windows(xp: np.ndarray, kernel, stride, dilation):
    """Yield ``(ky, kx, view)`` with ``view[c, i, j] = xp[c, i*sy + ky*dy, j*sx + kx*dx]``."""
    kh, kw = kernel
    sy, sx = stride
    dy, dx = dilation
    oh = (xp.shape[1] - (kh - 1) * dy - 1) // sy + 1
    ow = (xp.shape[2] - (kw - 1) * dx - 1) // sx + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"Expected a window that fits in the padded input {xp.shape[1:]}. Got kernel {kernel}, "
                         f"dilation {dilation} instead.")
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dy, kx * dx
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sy + 1:sy, x0:x0 + (ow - 1) * sx + 1:sx]


# --------------------------------------------------------------------------- convolutions
def conv2d(x, W, B=None, *, stride=(1, 1), dilation=(1, 1), groups=1, pads=(0, 0, 0, 0)) -> np.ndarray:
    """ONNX Conv (cross-correlation) of one image.

    Parameters
    ----------
    x : (Cin, H, W) array
    W : (Cout, Cin/groups, KH, KW) array
    B : (Cout,) array, optional
    stride, dilation : (y, x) ints
    groups : int
    pads : (top, left, bottom, right) ints, or "same" / "same_lower"

    Returns
    -------
    (Cout, OH, OW) float64 array, ``OH = (H + top + bottom - (KH-1)*dy - 1) // sy + 1``.
    """
    x, W = _f64(x), _f64(W)
    cin, cout = x.shape[0], W.shape[0]
    cin_g, cout_g = cin // groups, cout // groups
    kernel = W.shape[2:]
    p = _explicit(pads, x.shape[1:], kernel, stride, dilation)
    xp = _padded(x, p, 0.0)
    out = None
    for ky, kx, view in _windows(xp, kernel, stride, dilation):
        if out is None:
            out = np.zeros((cout,) + view.shape[1:])
        for g in range(groups):
            w = W[g * cout_g:(g + 1) * cout_g, :, ky, kx]
            out[g * cout_g:(g + 1) * cout_g] += np.einsum("oc,chw->ohw", w, view[g * cin_g:(g + 1) * cin_g])
    if B is not None:
        out += _f64(B)[:, None, None]
    return out


def conv_transpose2d(x, W, B=None, *, stride=(1, 1), dilation=(1, 1), groups=1, pads=(0, 0, 0, 0),
                     output_padding=(0, 0)) -> np.ndarray:
    """ONNX ConvTranspose of one image, by scattering every input pixel.

    Parameters
    ----------
    x : (Cin, H, W) array
    W : (Cin, Cout/groups, KH, KW) array
    B : (Cout,) array, optional
    stride, dilation, output_padding : (y, x) ints
    groups : int
    pads : (top, left, bottom, right) ints

    Returns
    -------
    (Cout, OH, OW) float64 array with
    ``OH = sy*(H-1) + output_padding_y + (KH-1)*dy + 1 - top - bottom``.
    """
    x, W = _f64(x), _f64(W)
    cin, h, w = x.shape
    cout_g = W.shape[1]
    cin_g = cin // groups
    cout = cout_g * groups
    kh, kw = W.shape[2:]
    sy, sx = stride
    dy, dx = dilation
    full_h = sy * (h - 1) + (kh - 1) * dy + 1 + output_padding[0]
    full_w = sx * (w - 1) + (kw - 1) * dx + 1 + output_padding[1]
    full = np.zeros((cout, full_h, full_w))
    for g in range(groups):
        xg = x[g * cin_g:(g + 1) * cin_g]
        Wg = W[g * cin_g:(g + 1) * cin_g]
        for ky in range(kh):
            for kx in range(kw):
                contrib = np.einsum("co,chw->ohw", Wg[:, :, ky, kx], xg)
                y0, x0 = ky * dy, kx * dx
                full[g * cout_g:(g + 1) * cout_g, y0:y0 + (h - 1) * sy + 1:sy, x0:x0 + (w - 1) * sx + 1:sx] += contrib
    t, l, b, r = pads
    out = full[:, t:full_h - b, l:full_w - r]
    if B is not None:
        out = out + _f64(B)[:, None, None]
    return np.ascontiguousarray(out)


def dense(x, W, B=None) -> np.ndarray:
    """A fully connected layer over the channel axis of every pixel.

    ``x`` (Cin, H, W), ``W`` (Cout, Cin), ``B`` (Cout,) -> (Cout, H, W).
    """
    out = np.einsum("oc,chw->ohw", _f64(W), _f64(x))
    if B is not None:
        out += _f64(B)[:, None, None]
    return out


def batch_norm(x, scale, bias, mean, var, *, epsilon=1e-5) -> np.ndarray:
    """ONNX BatchNormalization (inference): ``scale * (x - mean) / sqrt(var + eps) + bias`` per channel."""
    c = lambda v: _f64(v)[:, None, None]  # noqa: E731
    return c(scale) * (_f64(x) - c(mean)) / np.sqrt(c(var) + epsilon) + c(bias)


# --------------------------------------------------------------------------- pointwise
def relu(x) -> np.ndarray:
    return np.maximum(_f64(x), 0.0)


def leaky_relu(x, *, alpha=0.01) -> np.ndarray:
    x = _f64(x)
    return np.where(x >= 0, x, alpha * x)


def clip(x, *, min=-math.inf, max=math.inf) -> np.ndarray:  # noqa: A002 - ONNX attribute names
    return np.minimum(np.maximum(_f64(x), min), max)


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-_f64(x)))


def tanh(x) -> np.ndarray:
    return np.tanh(_f64(x))


def hard_sigmoid(x, *, alpha=0.2, beta=0.5) -> np.ndarray:
    return np.maximum(0.0, np.minimum(1.0, alpha * _f64(x) + beta))


def hard_swish(x) -> np.ndarray:
    x = _f64(x)
    return x * np.maximum(0.0, np.minimum(1.0, x / 6.0 + 0.5))


def softmax(x) -> np.ndarray:
    """Softmax over the channel axis of ``(C, H, W)``."""
    x = _f64(x)
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def identity(x) -> np.ndarray:
    return _f64(x).copy()


# --------------------------------------------------------------------------- pools
def max_pool(x, *, kernel, stride=None, dilation=(1, 1), pads=(0, 0, 0, 0)) -> np.ndarray:
    """ONNX MaxPool (floor mode); padded positions are ``-inf`` so they never win."""
    x = _f64(x)
    stride = kernel if stride is None else stride
    p = _explicit(pads, x.shape[1:], kernel, stride, dilation)
    xp = _padded(x, p, -np.inf)
    out = None
    for _, _, view in _windows(xp, kernel, stride, dilation):
        out = view.copy() if out is None else np.maximum(out, view)
    return out


def average_pool(x, *, kernel, stride=None, pads=(0, 0, 0, 0), count_include_pad=False) -> np.ndarray:
    """ONNX AveragePool (floor mode).

    The divisor is ``KH*KW`` with ``count_include_pad``, else the number of
    window positions inside the image.
    """
    x = _f64(x)
    stride = kernel if stride is None else stride
    p = _explicit(pads, x.shape[1:], kernel, stride, (1, 1))
    xp = _padded(x, p, 0.0)
    inside = _padded(np.ones((1,) + x.shape[1:]), p, 0.0)
    total = count = None
    windows = zip(_windows(xp, kernel, stride, (1, 1)), _windows(inside, kernel, stride, (1, 1)))
    for (_, _, view), (_, _, ones) in windows:
        total = view.copy() if total is None else total + view
        count = ones.copy() if count is None else count + ones
    if count_include_pad:
        return total / (kernel[0] * kernel[1])
    return total / count


def global_average_pool(x) -> np.ndarray:
    return _f64(x).mean(axis=(1, 2), keepdims=True)


def global_max_pool(x) -> np.ndarray:
    return _f64(x).max(axis=(1, 2), keepdims=True)


# --------------------------------------------------------------------------- resize
def _source_coordinates(n_in: int, n_out: int, scale: float, ctm: str) -> np.ndarray:
    o = np.arange(n_out, dtype=np.float64)
    if ctm == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if ctm == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if n_out > 1 else np.zeros(n_out)
    if ctm == "align_corners":
        return o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    if ctm == "asymmetric":
        return o / scale
    raise ValueError(f"Expected a coordinate_transformation_mode. Got {ctm!r} instead.")


def _nearest_index(x: np.ndarray, nearest_mode: str) -> np.ndarray:
    frac = x - np.floor(x)
    if nearest_mode == "round_prefer_floor":
        i = np.where(frac == 0.5, np.floor(x), np.round(x))
    elif nearest_mode == "round_prefer_ceil":
        i = np.where(frac == 0.5, np.ceil(x), np.round(x))
    elif nearest_mode == "floor":
        i = np.floor(x)
    elif nearest_mode == "ceil":
        i = np.ceil(x)
    else:
        raise ValueError(f"Expected a nearest_mode. Got {nearest_mode!r} instead.")
    return i.astype(np.int64)


def _resize_axis(x: np.ndarray, axis: int, scale: float, mode: str, ctm: str, nearest_mode: str) -> np.ndarray:
    n_in = x.shape[axis]
    n_out = int(math.floor(n_in * scale))
    src = _source_coordinates(n_in, n_out, scale, ctm)
    if mode == "nearest":
        idx = np.clip(_nearest_index(src, nearest_mode), 0, n_in - 1)
        return np.take(x, idx, axis=axis)
    if mode != "linear":
        raise ValueError(f"Expected mode 'nearest' or 'linear'. Got {mode!r} instead.")
    # outside the image the ONNX reference extends the edge value: same as clamping the coordinate
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = src - i0
    shape = [1] * x.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    return (1.0 - w) * np.take(x, i0, axis=axis) + w * np.take(x, i1, axis=axis)


def resize(x, *, scales, mode="nearest", coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor") -> np.ndarray:
    """ONNX Resize over H and W with ``scales = (sy, sx)``; output ``floor(H*sy) x floor(W*sx)``.

    Linear mode is separable (bilinear), one axis after the other.
    """
    x = _f64(x)
    x = _resize_axis(x, 1, scales[0], mode, coordinate_transformation_mode, nearest_mode)
    return _resize_axis(x, 2, scales[1], mode, coordinate_transformation_mode, nearest_mode)


def pad(x, *, pads, value=0.0) -> np.ndarray:
    """ONNX Pad (constant) of H and W by ``(top, left, bottom, right)``."""
    return _padded(_f64(x), pads, value)


# --------------------------------------------------------------------------- combining
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def binary(op: str, a, b, *, reverse=False) -> np.ndarray:
    """``a op b`` (``b op a`` with ``reverse``) for Add/Sub/Mul/Div.

    ``a`` is (C, H, W).  ``b`` is either another feature map (channels equal or
    1, spatial size equal or 1x1), or a constant of shape ``(C,)`` (one value
    per channel) or ``(1,)`` (a scalar).
    """
    a, b = _f64(a), _f64(b)
    if b.ndim == 1:
        b = b[:, None, None]
    return _BINARY[op](b, a) if reverse else _BINARY[op](a, b)


def concat(xs) -> np.ndarray:
    """Concatenation over channels."""
    return np.concatenate([_f64(x) for x in xs], axis=0)


# --------------------------------------------------------------------------- interpreter
def _run_node(op: str, ins: list[np.ndarray], a: Mapping, w: Mapping) -> np.ndarray:
    x = ins[0]
    if op == "Conv":
        return conv2d(x, w["W"], w.get("B"), stride=a["stride"], dilation=a["dilation"], groups=a["groups"],
                      pads=a["pads"])
    if op == "ConvTranspose":
        return conv_transpose2d(x, w["W"], w.get("B"), stride=a["stride"], dilation=a["dilation"],
                                groups=a["groups"], pads=a["pads"], output_padding=a["output_padding"])
    if op == "Dense":
        return dense(x, w["W"], w.get("B"))
    if op == "BatchNorm":
        return batch_norm(x, w["scale"], w["bias"], w["mean"], w["var"], epsilon=a["epsilon"])
    if op == "LeakyRelu":
        return leaky_relu(x, alpha=a["alpha"])
    if op == "Clip":
        return clip(x, min=a["min"], max=a["max"])
    if op == "HardSigmoid":
        return hard_sigmoid(x, alpha=a["alpha"], beta=a["beta"])
    if op in _UNARY:
        return _UNARY[op](x)
    if op == "MaxPool":
        return max_pool(x, kernel=a["kernel"], stride=a["stride"], dilation=a["dilation"], pads=a["pads"])
    if op == "AveragePool":
        return average_pool(x, kernel=a["kernel"], stride=a["stride"], pads=a["pads"],
                            count_include_pad=a["count_include_pad"])
    if op == "Resize":
        return resize(x, scales=a["scales"], mode=a["mode"],
                      coordinate_transformation_mode=a["coordinate_transformation_mode"],
                      nearest_mode=a["nearest_mode"])
    if op == "Pad":
        return pad(x, pads=a["pads"], value=a["value"])
    if op in _BINARY:
        other = ins[1] if len(ins) == 2 else w["C"]
        return binary(op, x, other, reverse=a["reverse"])
    if op == "Concat":
        return concat(ins)
    raise ValueError(f"Expected an op known to the naive reference. Got {op!r} instead.")


_UNARY = {
    "Relu": relu,
    "Sigmoid": sigmoid,
    "Tanh": tanh,
    "HardSwish": hard_swish,
    "Softmax": softmax,
    "Identity": identity,
    "GlobalAveragePool": global_average_pool,
    "GlobalMaxPool": global_max_pool,
}


def run_naive(model, image_chw) -> np.ndarray:
    """Run ``model`` on a whole image at once.

    Parameters
    ----------
    model : pipeline.model.Model
    image_chw : (C, H, W) array
        ``C == model.input_channels``.

    Returns
    -------
    (Cout, OH, OW) float64 array: the value of ``model.output``.
    """
    x = _f64(image_chw)
    if x.ndim != 3:
        raise ValueError(f"Expected a (C, H, W) image. Got shape {x.shape} instead.")
    tensors = {model.input_name: x}
    for node in model.nodes:
        ins = [tensors[name] for name in node.inputs]
        tensors[node.name] = _run_node(node.op, ins, node.attrs, node.weights)
    return tensors[model.output]
