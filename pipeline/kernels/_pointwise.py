"""Memory-bound per-pixel kernels: activations, per-channel affine, softmax."""

from __future__ import annotations

import math

import numba
import numpy as np

from ..config import NUMBA_FLAGS
from ._activations import activate

__all__ = ["activation_inplace", "affine_channels_inplace", "softmax_channels_inplace"]


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
def softmax_channels_inplace(x):
    """x (N, C) float32: softmax over C for each row, max-subtracted."""
    N, C = x.shape
    for i in range(N):
        m = -np.inf
        for c in range(C):
            m = max(m, x[i, c])
        s = np.float32(0.0)
        for c in range(C):
            e = math.exp(x[i, c] - m)
            x[i, c] = e
            s += e
        inv = np.float32(1.0) / s
        for c in range(C):
            x[i, c] *= inv
