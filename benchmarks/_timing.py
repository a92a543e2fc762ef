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

__all__ = ["repeats_for", "interleaved_rounds", "FmaPeak", "keep_freed_memory"]


def keep_freed_memory() -> bool:
    """Make glibc serve every allocation from its heap and never hand freed memory back.

    Large arrays are otherwise ``mmap``-ed fresh and unmapped on free, so every
    call of every method would page-fault (and the kernel zero) its whole
    output again: 8 ms of a 40 ms 32-channel 512x512 convolution here.  With
    ``M_MMAP_MAX = 0`` and an unbounded ``M_TRIM_THRESHOLD``, a freed output is
    reused by the next call, as the pipeline reuses its block buffers.  This
    applies to every method in the process alike (NumPy and PyTorch allocate
    with ``malloc``; ONNX Runtime reuses its own arena anyway).  Returns False
    where there is no glibc ``mallopt`` (the timings then include page faults).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


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
/* CHAINS independent FMA chains on VEC registers, CHAINS * LANES * 2 FLOP per iteration.
   Seeds come from memory so the compiler can neither fold nor merge the chains. */
float fma_peak(long iters, const float *seed) {
    VEC a[CHAINS];
    for (int k = 0; k < CHAINS; k++) a[k] = SET1(seed[k]);
    const VEC m = SET1(seed[CHAINS]), c = SET1(seed[CHAINS + 1]);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
        for (int k = 0; k < CHAINS; k++) a[k] = FMADD(a[k], m, c);
    }
    VEC s = a[0];
    for (int k = 1; k < CHAINS; k++) s = ADD(s, a[k]);
    float o[LANES];
    STOREU(o, s);
    return o[0];
}
"""

#: (gcc flags, macros, lanes, chains) for the widest FMA vectors a CPU may have:
#: 12 chains fill AVX2's 16 ymm registers, 24 AVX-512's 32 zmm (enough to cover
#: the 4-cycle FMA latency on two ports either way).
_VARIANTS = {
    "avx512f": (["-mavx512f", "-mfma"], dict(VEC="__m512", SET1="_mm512_set1_ps", FMADD="_mm512_fmadd_ps",
                                              ADD="_mm512_add_ps", STOREU="_mm512_storeu_ps"), 16, 24),
    "avx2": (["-mavx2", "-mfma"], dict(VEC="__m256", SET1="_mm256_set1_ps", FMADD="_mm256_fmadd_ps",
                                        ADD="_mm256_add_ps", STOREU="_mm256_storeu_ps"), 8, 12),
}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


class FmaPeak:
    """This core's FP32 peak, from a loop of FMAs on its widest vectors, compiled with gcc at run time.

    AVX-512 (16 lanes) where the CPU has AVX-512F, else AVX2 (8 lanes): the
    peak any code could reach here, which is what the kernels are held to.
    ``available`` is False (with ``reason``) when gcc is missing or the CPU lacks
    AVX2/FMA; :meth:`run` then must not be called.  ``isa`` names the variant.
    """

    def __init__(self, iters: int = 2_000_000) -> None:
        self.iters = iters
        self.available = False
        self.reason = ""
        self.isa = ""
        self._dir = tempfile.mkdtemp(prefix="fma_peak_")
        flags = _cpu_flags()
        if not {"avx2", "fma"} <= flags:
            self.reason = "CPU lacks AVX2/FMA"
            return
        self.isa = "avx512f" if "avx512f" in flags else "avx2"
        gcc_flags, macros, self.lanes, self.chains = _VARIANTS[self.isa]
        self._seed = np.array([1 + 0.01 * k for k in range(self.chains)] + [0.999999, 1e-6], np.float32)
        gcc = shutil.which("gcc")
        if gcc is None:
            self.reason = "gcc not found"
            return
        src, lib = Path(self._dir) / "fma_peak.c", Path(self._dir) / "fma_peak.so"
        defines = dict(macros, LANES=str(self.lanes), CHAINS=str(self.chains))
        src.write_text("".join(f"#define {k} {v}\n" for k, v in defines.items()) + _FMA_C)
        res = subprocess.run([gcc, "-O3", *gcc_flags, "-shared", "-fPIC", str(src), "-o", str(lib)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            self.reason = f"gcc failed: {res.stderr.strip()[:200]}"
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
        return float(self.iters * self.chains * self.lanes * 2)
