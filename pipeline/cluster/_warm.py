"""Warming workers: kernels compiled (or loaded from Numba's cache), block-task modules imported, the plan built.

One worker goes first and fills Numba's on-disk cache; the others then load
from it.  Many processes writing the cache at once has been reported to
crash, and compiling the same kernels in every process wastes seconds each.
"""

from __future__ import annotations

import time

__all__ = ["warm_up"]


#: Input dtypes whose normalisation (and, for integers, value-counting) kernels are compiled (or loaded) ahead of
#: the first block.
_WARM_DTYPES = ("uint8", "uint16", "float32")


def _warm(model) -> float:
    import numpy as np

    t0 = time.perf_counter()
    # what a block task imports and compiles besides the network: its first block should not pay for it
    # (the modules of the tasks themselves, which leave dask.array to the client that builds graphs)
    from ..io import _write  # noqa: F401
    from ..model import get_plan
    from ..tiling import _block, _windows  # noqa: F401
    from ..tiling._prepost import _channel_histogram, _histogram_offset, normalize_block

    stats = np.array([[0.0], [1.0]])
    for dtype in _WARM_DTYPES:
        normalize_block(np.zeros((1, 1, 1), dtype), True, stats)
        hist = _histogram_offset(np.dtype(dtype))
        if hist is not None:
            _channel_histogram(np.zeros((1, 1, 1), dtype), *hist)
    plan = get_plan(model)
    geo = model.geometry
    unit = max(geo.stride)
    edge = unit * max(2, -(-(2 * max(geo.halo) + unit) // unit))
    while True:
        try:
            model.output_shape(edge, edge)
            break
        except Exception:
            edge += unit
            if edge > 4096:
                return time.perf_counter() - t0
    plan.run(np.zeros((edge, edge, model.input_channels), np.float32))
    return time.perf_counter() - t0


def warm_up(client, model) -> dict[str, float]:
    """Build ``model``'s plan and compile its kernels on every worker; seconds per worker."""
    workers = list(client.scheduler_info().get("workers", {}))
    if not workers:
        return {}
    out = dict(client.run(_warm, model, workers=workers[:1]))
    if len(workers) > 1:
        out.update(client.run(_warm, model, workers=workers[1:]))
    return out
