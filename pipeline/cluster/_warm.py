"""Warming workers: kernels compiled (or loaded from Numba's cache) and the model's plan built once.

One worker goes first and fills Numba's on-disk cache; the others then load
from it.  Many processes writing the cache at once has been reported to
crash, and compiling the same kernels in every process wastes seconds each.
"""

from __future__ import annotations

import time

__all__ = ["warm_up"]


def _warm(model) -> float:
    import numpy as np

    from ..model import get_plan

    t0 = time.perf_counter()
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
