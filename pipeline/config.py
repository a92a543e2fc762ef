"""Configuration in one place: Numba flags, block sizes, thread counts.

Every value can be overridden by an environment variable ``PIPELINE_<NAME>``
(and the Dask config key ``pipeline.<name>`` where noted).  Numba flags must be
set before the first kernel compiles, which is why :mod:`pipeline.kernels`
imports this module first.
"""

from __future__ import annotations

import os

__all__ = [
    "NUMBA_FLAGS",
    "block_memory_budget",
    "max_halo_overhead",
    "default_block_size",
    "read_once_bytes",
    "keep_block_buffers",
    "apply_numba_flags",
    "worker_thread_env",
]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(f"PIPELINE_{name}")
    if value is None:
        try:
            import dask

            value = dask.config.get(f"pipeline.{name.lower().replace('_', '-')}", None)
        except Exception:  # dask not importable in the kernels room is fine
            value = None
    return default if value is None else int(value)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(f"PIPELINE_{name}")
    return default if value is None else float(value)


#: Keyword arguments given to every ``numba.njit`` in :mod:`pipeline.kernels`.
NUMBA_FLAGS = dict(nogil=True, cache=True, fastmath=True, error_model="numpy")


def apply_numba_flags() -> None:
    """Switch on LLVM's SLP vectoriser before the first compile.

    Numba ships with it off; with it on, the unrolled output-channel loops of
    the convolution kernels become FMA instructions on vector registers.  The
    flag is process-wide; the kernel reference tests guard its effect.
    """
    if os.environ.get("PIPELINE_SLP_VECTORIZE", "1") != "1":
        return
    import numba

    numba.config.SLP_VECTORIZE = 1


def block_memory_budget() -> int:
    """Bytes one task may use for a block and the network's activations."""
    return _env_int("BLOCK_MEMORY", 512 * 2**20)


def max_halo_overhead() -> float:
    """Largest fraction of extra (halo) pixels the automatic block size accepts."""
    return _env_float("MAX_HALO_OVERHEAD", 0.15)


def keep_block_buffers() -> bool:
    """Whether a thread keeps its block buffers between blocks (``PIPELINE_KEEP_BUFFERS``, default 1).

    Kept, the next block reuses memory already mapped instead of page-faulting
    fresh memory in (about 15 % of a 2048 px U-Net block's time); the cost is
    holding one block's working set per worker thread between blocks.
    """
    return _env_int("KEEP_BUFFERS", 1) != 0


def default_block_size() -> int:
    """Largest edge of an automatically chosen compute block, in input pixels."""
    return _env_int("MAX_BLOCK_SIZE", 2048)


def read_once_bytes() -> int:
    """Largest stored image (bytes, in its own dtype) whose blocks' windows are read once for percentiles.

    Percentile normalisation needs every pixel counted before any block can
    run.  Up to this size each block's haloed window is read by a task that
    also counts the block's pixels, and the network then runs on that window:
    every window is read once, and all of them sit in worker memory until the
    statistics are known.  Larger images are counted in a pass of their own
    and each window is read again by its block, with memory bounded by the
    blocks in flight.  ``PIPELINE_READ_ONCE_BYTES``, default 512 MiB; 0 turns it off.
    """
    return _env_int("READ_ONCE_BYTES", 512 * 2**20)


def worker_thread_env(threads: int = 1) -> dict[str, str]:
    """Environment for worker processes: one level of parallelism.

    Dask threads call serial ``nogil`` kernels, so Numba, OpenMP and BLAS are
    each held to ``threads`` (normally 1) inside a worker.
    """
    n = str(max(1, int(threads)))
    return {
        "NUMBA_NUM_THREADS": n,
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
    }
