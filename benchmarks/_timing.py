"""Timing helpers: interleaved rounds, calls long enough to time, and this core's FMA peak."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["repeats_for", "interleaved_rounds", "FmaPeak"]


def repeats_for(fn: Callable[[], object], *, min_seconds: float) -> int:
    """How many back-to-back calls of ``fn`` make one timed call last at least ``min_seconds``."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, math.ceil(min_seconds / one))


def interleaved_rounds(methods: dict[str, Callable[[], object]], *, rounds: int,
                       min_seconds: float) -> dict[str, list[float]]:
    """Seconds per call of every method, measured ABCABC... for ``rounds`` rounds.

    Each timed sample runs the method enough times back to back to last at
    least ``min_seconds`` and reports the time of one call.  Interleaving
    exposes every method to the same drift of a shared, noisy machine, so
    ratios taken within one round are trustworthy where absolute times are not.
    """
    reps = {name: repeats_for(fn, min_seconds=min_seconds) for name, fn in methods.items()}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            n = reps[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times


_FMA_C = r"""
#include <immintrin.h>
/* 12 independent FMA chains on ymm registers, 12 * 8 * 2 FLOP per iteration.
   Seeds come from memory so the compiler can neither fold nor merge the chains. */
float fma_peak(long iters, const float *seed) {
    __m256 a[12];
    for (int k = 0; k < 12; k++) a[k] = _mm256_set1_ps(seed[k]);
    const __m256 m = _mm256_set1_ps(seed[12]), c = _mm256_set1_ps(seed[13]);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++) a[k] = _mm256_fmadd_ps(a[k], m, c);
    }
    __m256 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm256_add_ps(s, a[k]);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0];
}
"""

FLOP_PER_ITER = 12 * 8 * 2


class FmaPeak:
    """This core's FP32 peak, measured by a loop of AVX2 FMAs compiled with gcc at run time.

    ``available`` is False (with ``reason``) when gcc is missing or the CPU lacks
    AVX2/FMA; :meth:`run` then must not be called.
    """

    def __init__(self, iters: int = 2_000_000) -> None:
        self.iters = iters
        self.available = False
        self.reason = ""
        self._dir = tempfile.mkdtemp(prefix="fma_peak_")
        self._seed = np.array([1 + 0.01 * k for k in range(12)] + [0.999999, 1e-6], np.float32)
        gcc = shutil.which("gcc")
        if gcc is None:
            self.reason = "gcc not found"
            return
        src, lib = Path(self._dir) / "fma_peak.c", Path(self._dir) / "fma_peak.so"
        src.write_text(_FMA_C)
        res = subprocess.run([gcc, "-O3", "-mavx2", "-mfma", "-shared", "-fPIC", str(src), "-o", str(lib)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            self.reason = f"gcc failed: {res.stderr.strip()[:200]}"
            return
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        if " avx2" not in flags or " fma" not in flags:
            self.reason = "CPU lacks AVX2/FMA"
            return
        self._lib = ctypes.CDLL(str(lib))
        self._lib.fma_peak.restype = ctypes.c_float
        self._lib.fma_peak.argtypes = [ctypes.c_long, ctypes.c_void_p]
        self.available = True

    def run(self) -> None:
        """One call: ``iters`` iterations of 12 FMAs."""
        self._lib.fma_peak(self.iters, self._seed.ctypes.data)

    @property
    def flop(self) -> float:
        """Floating-point operations of one :meth:`run`."""
        return float(self.iters * FLOP_PER_ITER)
