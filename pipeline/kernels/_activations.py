"""Activation codes and the scalar activation shared by every kernel epilogue."""

from __future__ import annotations

import math

import numba
import numpy as np

from ..config import NUMBA_FLAGS

__all__ = ["ACT_CODES", "activation_code", "activate"]

#: Activation name -> integer code compiled into kernel epilogues.
ACT_CODES = {
    None: 0,
    "Relu": 1,
    "LeakyRelu": 2,
    "Clip": 3,
    "Sigmoid": 4,
    "Tanh": 5,
    "HardSigmoid": 6,
    "HardSwish": 7,
}


def activation_code(name: str | None) -> int:
    """Integer code of an activation name (``None`` for identity)."""
    try:
        return ACT_CODES[name]
    except KeyError:
        raise ValueError(f"Expected an activation among {sorted(k for k in ACT_CODES if k)}. Got {name!r} instead.") from None


@numba.njit(inline="always", **NUMBA_FLAGS)
def activate(v, act, alpha, beta):
    """Apply activation ``act`` to the float32 scalar ``v``.

    ``alpha``/``beta`` are LeakyRelu's slope, Clip's min/max and HardSigmoid's
    alpha/beta.
    """
    if act == 0:
        return v
    if act == 1:
        return v if v > 0 else numba.float32(0)
    if act == 2:
        return v if v >= 0 else v * alpha
    if act == 3:
        return min(max(v, alpha), beta)
    if act == 4:
        return numba.float32(1) / (numba.float32(1) + np.exp(-v))  # float32 expf
    if act == 5:
        return math.tanh(v)
    if act == 6:
        return max(numba.float32(0), min(numba.float32(1), alpha * v + beta))
    # 7: HardSwish
    return v * max(numba.float32(0), min(numba.float32(1), v / numba.float32(6) + numba.float32(0.5)))
