"""Fine performance metrics of block tasks, for the Dask dashboard and the benchmarks.

Inside a task running on a ``distributed`` worker, time spent under
:func:`meter` is reported by Dask's *fine performance metrics* (dashboard page
"Fine Performance Metrics"; ``Worker.digests_total`` keys
``("execute", span, prefix, label, "seconds")``) instead of being lumped into
the task's compute time.  Labels used: ``read`` (the haloed window, or a
region counted for the normalisation statistics, from the store),
``normalise``, ``kernels`` (the network), ``post-process``.
Elsewhere (threaded scheduler, plain calls) it only costs a clock read.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

__all__ = ["meter"]


def meter(label: str):
    """Context manager attributing the enclosed seconds to ``label`` on a Dask worker."""
    if "distributed" not in sys.modules:  # no worker in this process: nobody listens
        return nullcontext()
    from distributed.metrics import context_meter

    return context_meter.meter(label)
