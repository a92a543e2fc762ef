"""Convolution weights packed once for the tile kernels: channels last, padded, aligned."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from ._conv import LANES, WINOGRAD_MIN_CHANNELS

__all__ = ["ALIGN", "aligned_empty", "padded", "PackedConv", "pack_conv", "pack_conv_transpose", "winograd_weights"]

#: Byte alignment of packed weights and kernel outputs (a cache line; AVX needs 32).
ALIGN = 64


def aligned_empty(shape, dtype=np.float32, align: int = ALIGN) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + n].view(dtype).reshape(shape)


def _aligned_zeros(shape) -> np.ndarray:
    out = aligned_empty(shape)
    out[...] = 0
    return out


def padded(n: int) -> int:
    """``n`` rounded up to a whole number of vectors (:data:`LANES` lanes)."""
    return -(-n // LANES) * LANES


@dataclass(frozen=True, eq=False)
class PackedConv:
    """Weights of one (transposed) convolution, ready for the kernels.

    Attributes
    ----------
    weights : float32 array, 64-byte aligned
        Dense/grouped: ``(G, KH, KW, Cin/G, CogP)``; depthwise: ``(KH, KW, CP)``;
        output channels (depthwise: channels) zero-padded to a multiple of
        ``LANES`` (8, or 16 with AVX-512).
    groups, in_channels, out_channels : int
    kernel : (int, int)
    depthwise : bool
        One filter per channel (``groups == Cin == Cout``).
    transpose : bool
        Weights of a transposed convolution (:func:`pack_conv_transpose`).
    winograd : float32 array or None
        ``(4, 3, Cin, CogP)``: the weights transformed for Winograd F(2,3)
        (:func:`winograd_weights`), for 3x3 dense convolutions wide enough to
        gain from it (:data:`~pipeline.kernels._conv.WINOGRAD_MIN_CHANNELS`);
        else None.
    """

    weights: np.ndarray
    groups: int
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    depthwise: bool
    transpose: bool = False
    winograd: np.ndarray | None = None

    def __reduce__(self):
        # NumPy unpickles into 16-byte aligned memory; realign on the way in.  The
        # Winograd weights are derived again there, if the receiving CPU takes them.
        return (_restore, (np.asarray(self.weights), self.groups, self.in_channels, self.out_channels,
                           self.kernel, self.depthwise, self.transpose))


def _restore(weights, groups, in_channels, out_channels, kernel, depthwise, transpose=False) -> PackedConv:
    # Packed in a process whose vector width differs (an AVX2 client, an AVX-512
    # worker): output channels are re-padded to this process's LANES.
    width = weights.shape[-1]
    real = out_channels if depthwise else out_channels // groups
    if width % LANES:
        width = padded(real)
    if width == weights.shape[-1]:
        w = aligned_empty(weights.shape)
        w[...] = weights
    else:
        w = _aligned_zeros(weights.shape[:-1] + (width,))
        w[..., :real] = weights[..., :real]
    return _with_winograd(PackedConv(w, groups, in_channels, out_channels, tuple(kernel), depthwise, transpose))


def winograd_weights(weights: np.ndarray) -> np.ndarray:
    """Packed 3x3 weights ``(1, 3, 3, Cin, CoP)`` transformed for Winograd F(2,3) along rows.

    Returns ``(4, 3, Cin, CoP)``, 64-byte aligned: for every kernel row
    ``(g0, g1, g2)`` (the three columns), ``g0``, ``(g0 + g1 + g2) / 2``,
    ``(g0 - g1 + g2) / 2`` and ``g2``, each formed in float64 and rounded once.
    """
    g = np.asarray(weights[0], dtype=np.float64)  # (ky, kx, Cin, CoP)
    u = aligned_empty((4,) + g.shape[:1] + g.shape[2:])
    u[0] = g[:, 0]
    u[1] = (g[:, 0] + g[:, 1] + g[:, 2]) * 0.5
    u[2] = (g[:, 0] - g[:, 1] + g[:, 2]) * 0.5
    u[3] = g[:, 2]
    return u


def _with_winograd(p: PackedConv) -> PackedConv:
    """``p`` with its Winograd weights, if its convolution is one to take that kernel."""
    if (WINOGRAD_MIN_CHANNELS is None or p.transpose or p.depthwise or p.groups != 1 or p.kernel != (3, 3)
            or p.in_channels % LANES or min(p.in_channels, p.out_channels) < WINOGRAD_MIN_CHANNELS):
        return p
    return dataclasses.replace(p, winograd=winograd_weights(p.weights))


def _weights4(W, what: str) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 4 or not np.issubdtype(W.dtype, np.number):
        raise ModelError(f"Expected {what} weights as a numeric 4-D array. Got shape {W.shape}, dtype {W.dtype} instead.")
    return W.astype(np.float32)


def _check_groups(n: int, groups: int, axis: str) -> None:
    if int(groups) < 1 or n % int(groups):
        raise ModelError(f"Expected {axis} ({n}) divisible by groups ({groups}), groups >= 1.")


def pack_conv(W, groups: int = 1) -> PackedConv:
    """Pack ONNX Conv weights ``(Cout, Cin/groups, KH, KW)``."""
    W = _weights4(W, "Conv")
    cout, cig, kh, kw = W.shape
    _check_groups(cout, groups, "Cout")
    cog = cout // groups
    if groups > 1 and cig == 1 and cog == 1:
        packed = _aligned_zeros((kh, kw, padded(cout)))
        packed[:, :, :cout] = W[:, 0].transpose(1, 2, 0)
        return PackedConv(packed, groups, cout, cout, (kh, kw), True)
    packed = _aligned_zeros((groups, kh, kw, cig, padded(cog)))
    packed[..., :cog] = W.reshape(groups, cog, cig, kh, kw).transpose(0, 3, 4, 2, 1)
    return _with_winograd(PackedConv(packed, groups, cig * groups, cout, (kh, kw), False))


def pack_conv_transpose(W, groups: int = 1) -> PackedConv:
    """Pack ONNX ConvTranspose weights ``(Cin, Cout/groups, KH, KW)``."""
    W = _weights4(W, "ConvTranspose")
    cin, cog, kh, kw = W.shape
    _check_groups(cin, groups, "Cin")
    cig = cin // groups
    packed = _aligned_zeros((groups, kh, kw, cig, padded(cog)))
    packed[..., :cog] = W.reshape(groups, cig, cog, kh, kw).transpose(0, 3, 4, 1, 2)
    return PackedConv(packed, groups, cin, cog * groups, (kh, kw), False, transpose=True)
