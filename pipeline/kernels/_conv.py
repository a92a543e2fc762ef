"""Direct convolution, channels-last, with the bias and activation fused in.

Loop order follows ../shared/PERF_NOTES.md: the kernel-row loop sits outside
the pixel loop so one row of weights stays in L1, and the innermost loop runs
over contiguous output channels so LLVM vectorises it into FMAs.
"""

from __future__ import annotations

import numba
import numpy as np

from ..config import NUMBA_FLAGS
from ._activations import activate

__all__ = ["conv2d_grouped", "conv2d_depthwise", "conv_transpose2d_grouped"]


@numba.njit(**NUMBA_FLAGS)
def conv2d_grouped(x, w, b, out, sy, sx, dy, dx, act, alpha, beta):
    """Valid grouped convolution.

    x : (H, W, G*Cig) float32, already padded
    w : (G, KH, KW, Cig, Cog) float32, packed
    b : (G*Cog,) float32
    out : (Ho, Wo, G*Cog) float32, written
    """
    G, KH, KW, Cig, Cog = w.shape
    Ho, Wo, _ = out.shape
    for oy in range(Ho):
        row = out[oy]
        for ox in range(Wo):
            for co in range(G * Cog):
                row[ox, co] = b[co]
        for ky in range(KH):
            xrow = x[oy * sy + ky * dy]
            for ox in range(Wo):
                acc = row[ox]
                for kx in range(KW):
                    px = xrow[ox * sx + kx * dx]
                    for g in range(G):
                        wk = w[g, ky, kx]
                        for ci in range(Cig):
                            v = px[g * Cig + ci]
                            wr = wk[ci]
                            for co in range(Cog):
                                acc[g * Cog + co] += v * wr[co]
        for ox in range(Wo):
            for co in range(G * Cog):
                row[ox, co] = activate(row[ox, co], act, alpha, beta)


@numba.njit(**NUMBA_FLAGS)
def conv2d_depthwise(x, w, b, out, sy, sx, dy, dx, act, alpha, beta):
    """Valid depthwise convolution (one filter per channel, multiplier 1).

    x : (H, W, C) ; w : (KH, KW, C) ; b : (C,) ; out : (Ho, Wo, C)
    """
    KH, KW, C = w.shape
    Ho, Wo, _ = out.shape
    for oy in range(Ho):
        row = out[oy]
        for ox in range(Wo):
            for c in range(C):
                row[ox, c] = b[c]
        for ky in range(KH):
            xrow = x[oy * sy + ky * dy]
            for ox in range(Wo):
                acc = row[ox]
                for kx in range(KW):
                    px = xrow[ox * sx + kx * dx]
                    wr = w[ky, kx]
                    for c in range(C):
                        acc[c] += px[c] * wr[c]
        for ox in range(Wo):
            for c in range(C):
                row[ox, c] = activate(row[ox, c], act, alpha, beta)


@numba.njit(**NUMBA_FLAGS)
def conv_transpose2d_grouped(x, w, out, sy, sx, dy, dx):
    """Full transposed convolution (no padding, no bias), accumulated into ``out``.

    x : (H, W, G*Cig) ; w : (G, KH, KW, Cig, Cog) ;
    out : ((H-1)*sy + (KH-1)*dy + 1, (W-1)*sx + (KW-1)*dx + 1, G*Cog), zeroed by the caller
    """
    G, KH, KW, Cig, Cog = w.shape
    H, W, _ = x.shape
    for iy in range(H):
        for ky in range(KH):
            orow = out[iy * sy + ky * dy]
            for ix in range(W):
                px = x[iy, ix]
                for kx in range(KW):
                    acc = orow[ix * sx + kx * dx]
                    for g in range(G):
                        wk = w[g, ky, kx]
                        for ci in range(Cig):
                            v = px[g * Cig + ci]
                            wr = wk[ci]
                            for co in range(Cog):
                                acc[g * Cog + co] += v * wr[co]
