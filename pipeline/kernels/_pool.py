"""Pooling on pre-padded channels-last maps."""

from __future__ import annotations

import numba
import numpy as np

from ..config import NUMBA_FLAGS
from ._conv import max_pool_kernel as max_pool2d  # with the register-tile intrinsics it uses

__all__ = ["max_pool2d", "avg_pool2d"]


@numba.njit(**NUMBA_FLAGS)
def avg_pool2d(x, out, KH, KW, sy, sx, vy0, vy1, vx0, vx1, count_include_pad):
    """Valid average pooling on a zero-padded map.

    Rows ``vy0:vy1`` and columns ``vx0:vx1`` of ``x`` are inside the image;
    the rest is padding.  With ``count_include_pad`` the divisor is
    ``KH * KW``, otherwise the number of window positions inside the image.
    """
    Ho, Wo, C = out.shape
    for oy in range(Ho):
        y0 = oy * sy
        ny = min(y0 + KH, vy1) - max(y0, vy0)
        for ox in range(Wo):
            x0 = ox * sx
            acc = out[oy, ox]
            for c in range(C):
                acc[c] = 0.0
            for ky in range(KH):
                for kx in range(KW):
                    px = x[y0 + ky, x0 + kx]
                    for c in range(C):
                        acc[c] += px[c]
            if count_include_pad:
                n = KH * KW
            else:
                nx = min(x0 + KW, vx1) - max(x0, vx0)
                n = max(ny, 0) * max(nx, 0)
            inv = np.float32(1.0) / np.float32(max(n, 1))
            for c in range(C):
                acc[c] *= inv
