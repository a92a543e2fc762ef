"""Memory-bound per-pixel kernels: activations, per-channel affine, softmax's steps."""

from __future__ import annotations

import numba
import numpy as np

from ..config import NUMBA_FLAGS
from ._activations import activate

__all__ = [
    "activation_inplace",
    "affine_channels_inplace",
    "subtract_row_max_inplace",
    "divide_by_row_sum_inplace",
    "conv1x1_narrow",
    "shifted_scaled_f32",
    "count_values",
]


@numba.njit(**NUMBA_FLAGS)
def activation_inplace(x, act, alpha, beta):
    """x (N, C) float32: x = act(x)."""
    N, C = x.shape
    for i in range(N):
        for c in range(C):
            x[i, c] = activate(x[i, c], act, alpha, beta)


@numba.njit(**NUMBA_FLAGS)
def affine_channels_inplace(x, scale, shift, act, alpha, beta):
    """x (N, C) float32: x = act(x * scale[c] + shift[c])."""
    N, C = x.shape
    for i in range(N):
        for c in range(C):
            x[i, c] = activate(x[i, c] * scale[c] + shift[c], act, alpha, beta)


@numba.njit(**NUMBA_FLAGS)
def subtract_row_max_inplace(x):
    """x (N, C) float32: every row minus its maximum (softmax's first step)."""
    N, C = x.shape
    for i in range(N):
        m = x[i, 0]
        for c in range(1, C):
            m = max(m, x[i, c])
        for c in range(C):
            x[i, c] -= m


@numba.njit(**NUMBA_FLAGS)
def divide_by_row_sum_inplace(x):
    """x (N, C) float32: every row times the reciprocal of its float32 sum (softmax's last step)."""
    N, C = x.shape
    for i in range(N):
        s = np.float32(0.0)
        for c in range(C):
            s += x[i, c]
        inv = np.float32(1.0) / s
        for c in range(C):
            x[i, c] *= inv


@numba.njit(**NUMBA_FLAGS)
def conv1x1_narrow(x, y0, x0, w, b, out, act, alpha, beta):
    """1x1 convolution to a few output channels: ``out[oy, ox] = act(b + w @ x[y0 + oy, x0 + ox])``.

    ``x (H, W, Cin)``, ``w (Cout, Cin)``, ``b (Cout,)``, ``out (Ho, Wo, Cout)``,
    the window inside ``x``.  Each output value is one dot product over the
    pixel's contiguous channels (vectorised along ``Cin``): for a network's head
    (16 -> 2, say) this reads the input once and writes only the real channels,
    where the tile kernels would pad ``Cout`` to a whole vector.
    """
    Ho, Wo, Cout = out.shape
    Cin = x.shape[2]
    for oy in range(Ho):
        for ox in range(Wo):
            px = x[y0 + oy, x0 + ox]
            o = out[oy, ox]
            for co in range(Cout):
                acc = b[co]
                wc = w[co]
                for ci in range(Cin):
                    acc += px[ci] * wc[ci]
                o[co] = activate(acc, act, alpha, beta)


@numba.njit(**dict(NUMBA_FLAGS, fastmath=False))
def shifted_scaled_f32(x, lo, scale, out):
    """x (N, C) of any real dtype: ``out = float32((x - lo[c]) * scale[c])``, computed in float64.

    One pass, no temporaries, and the value NumPy's ``((x - lo) * scale).astype(np.float32)``
    gives for float64 ``lo`` and ``scale`` (strict IEEE arithmetic, no fast-math).
    """
    N, C = x.shape
    if C == 1:
        l0, s0 = lo[0], scale[0]
        for i in range(N):
            out[i, 0] = np.float32((x[i, 0] - l0) * s0)
        return
    for i in range(N):
        for c in range(C):
            out[i, c] = np.float32((x[i, c] - lo[c]) * scale[c])


@numba.njit(**NUMBA_FLAGS)
def count_values(x, offset, counts):
    """x (N, C) of integers (at most 16 bits) or bools: ``counts[x[i, c] + offset, c] += 1``.

    ``counts`` (bins, C) int64 accumulates, so several arrays can be counted
    into it; every value plus ``offset`` must lie in ``[0, bins)``.
    """
    N, C = x.shape
    if C == 1:
        for i in range(N):
            counts[np.int64(x[i, 0]) + offset, 0] += 1
        return
    for i in range(N):
        for c in range(C):
            counts[np.int64(x[i, c]) + offset, c] += 1
