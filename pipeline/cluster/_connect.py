"""Connecting to Dask: an embedded LocalCluster of worker processes, or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator, TextIO

from ..config import block_memory_budget, worker_thread_env
from ..errors import ClusterError, InputError

__all__ = ["connect", "default_workers", "embedded_config"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(threads_per_worker: int = 1) -> tuple[int, int]:
    """``(workers, threads_per_worker)`` for this machine.

    One single-threaded worker process per core (kernels release the GIL but
    block handling is Python), fewer if memory cannot hold two blocks per worker.
    """
    import psutil

    threads = max(1, int(threads_per_worker))
    by_cores = max(1, _cores() // threads)
    by_memory = max(1, int(psutil.virtual_memory().total // (2 * threads * block_memory_budget())))
    return min(by_cores, by_memory), threads


#: Settings of the embedded cluster where Dask's defaults cost a 2-core machine several per cent of its
#: CPU while idle (measured over 10 s with 2 workers: 1.37 core-seconds with Dask's defaults, 0.37-0.42
#: with these).  Each applies only while the key still has Dask's own default, so a user's setting wins.
EMBEDDED_CONFIG = {
    # event-loop responsiveness checks, in the scheduler, each nanny and each worker (Dask: 20ms)
    "distributed.admin.tick.interval": "200ms",
    # psutil samples for the dashboard's System page (Dask: 500ms)
    "distributed.admin.system-monitor.interval": "1s",
    # stack samples of running tasks for the dashboard's Profile page (Dask: 10ms): still about 20 per
    # block of the shipped model
    "distributed.worker.profile.interval": "100ms",
    # each worker's and each nanny's check of the spill, pause and terminate thresholds (Dask: 100ms)
    "distributed.worker.memory.monitor-interval": "250ms",
}

#: glibc's malloc then asks for transparent huge pages for its large blocks (Blosc and zstd buffers of
#: whole chunks).  Encoding a 32 MiB float32 block with Blosc LZ4 takes about 28 % less time (7300 -> 200
#: page faults a call) and decoding about 35 % less; NumPy already does this for its own arrays.
#: Applied to the embedded cluster's workers when ``GLIBC_TUNABLES`` is not set already; other C
#: libraries ignore it.
MALLOC_TUNABLES = "glibc.malloc.hugetlb=1"


def _dask_default(key: str):
    import dask

    return dask.config.get(key, default=None, config=dask.config.merge(*dask.config.defaults))


def embedded_config() -> dict:
    """Dask settings for an embedded LocalCluster: :data:`EMBEDDED_CONFIG` where the user kept Dask's
    default, and :data:`MALLOC_TUNABLES` in the environment the nannies spawn workers with."""
    import dask
    import distributed  # noqa: F401  (registers the distributed.* defaults compared with)

    out = {key: ours for key, ours in EMBEDDED_CONFIG.items()
           if dask.config.get(key, default=None) == _dask_default(key)}
    spawn_env = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    if "GLIBC_TUNABLES" not in os.environ and "GLIBC_TUNABLES" not in spawn_env:
        out["distributed.nanny.pre-spawn-environ"] = {**spawn_env, "GLIBC_TUNABLES": MALLOC_TUNABLES}
    return out


def _positive(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"Expected {name} to be a positive integer. Got {value!r} instead.")
    return value


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    *,
    scheduler_file: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool = True,
    dashboard_address: str = "127.0.0.1:0",
    echo: TextIO | None | bool = True,
) -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:port``).
    scheduler_file : str, optional
        Scheduler file written by ``dask scheduler --scheduler-file``.
    workers, threads_per_worker : int, optional
        Size of the embedded cluster (default: see :func:`default_workers`).
        Ignored when connecting to an existing scheduler.
    processes : bool
        Embedded cluster with worker processes (default) or threads.
    dashboard_address : str
        Where the embedded cluster's dashboard listens (a free port by default).
    echo : file or bool
        Where the dashboard link is printed (``True``: the current stderr; ``None``/``False``: silent).

    Yields
    ------
    distributed.Client
        Registered as the default, so ``dask.compute`` runs on it.  An
        embedded cluster is closed on exit; an existing one is left running.

    Examples
    --------
    >>> with connect(workers=1, echo=None) as client:   # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    import distributed

    workers = _positive("workers", workers)
    threads_per_worker = _positive("threads_per_worker", threads_per_worker)
    if scheduler and scheduler_file:
        raise InputError("Expected one of scheduler and scheduler_file. Got both instead.")
    cluster = None
    try:
        if scheduler or scheduler_file:
            if scheduler_file and not os.path.exists(scheduler_file):
                raise InputError(f"Scheduler file {scheduler_file!r} does not exist.")
            client = distributed.Client(address=scheduler, scheduler_file=scheduler_file, timeout="20s")
        else:
            import dask

            n, t = default_workers(threads_per_worker or 1)
            n = workers or n
            # the servers read these settings when they start; the workers get a copy of the config
            with dask.config.set(embedded_config()):
                cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=t,
                    processes=processes,
                    dashboard_address=dashboard_address,
                    env=worker_thread_env(1) if processes else None,
                    silence_logs=logging.ERROR,
                )
            client = distributed.Client(cluster)
    except (OSError, TimeoutError) as exc:
        where = scheduler or scheduler_file or "an embedded LocalCluster"
        raise ClusterError(f"Cannot reach the Dask scheduler at {where}: {' '.join(str(exc).split())}.") from None
    try:
        if echo is True:
            echo = sys.stderr
        if echo:
            link = client.dashboard_link if cluster is not None or scheduler or scheduler_file else None
            print(f"Dask dashboard: {link}", file=echo, flush=True)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
