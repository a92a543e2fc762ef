"""Resizing by precomputed source indices and weights (separable)."""

from __future__ import annotations

import numba

from ..config import NUMBA_FLAGS

__all__ = ["resize_nearest", "resize_linear"]


@numba.njit(**NUMBA_FLAGS)
def resize_nearest(x, out, iy, ix):
    """out[o, p] = x[iy[o], ix[p]] for every channel."""
    Ho, Wo, C = out.shape
    for oy in range(Ho):
        src = x[iy[oy]]
        for ox in range(Wo):
            s = src[ix[ox]]
            d = out[oy, ox]
            for c in range(C):
                d[c] = s[c]


@numba.njit(**NUMBA_FLAGS)
def resize_linear(x, out, iy0, iy1, wy, ix0, ix1, wx):
    """Bilinear interpolation between rows iy0/iy1 and columns ix0/ix1 with weights wy, wx."""
    Ho, Wo, C = out.shape
    for oy in range(Ho):
        r0 = x[iy0[oy]]
        r1 = x[iy1[oy]]
        fy = wy[oy]
        for ox in range(Wo):
            fx = wx[ox]
            a = r0[ix0[ox]]
            b = r0[ix1[ox]]
            c_ = r1[ix0[ox]]
            d_ = r1[ix1[ox]]
            dst = out[oy, ox]
            for c in range(C):
                top = a[c] + fx * (b[c] - a[c])
                bot = c_[c] + fx * (d_[c] - c_[c])
                dst[c] = top + fy * (bot - top)
