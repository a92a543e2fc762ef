"""Helpers shared by command modules: cluster options and the cluster context."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator

__all__ = ["add_cluster_options", "cluster_from_args", "positive_int"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler | --scheduler-file``, ``--workers``, ``--threads-per-worker``, ``--report``."""
    g = parser.add_argument_group("cluster")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDR", help="use the running scheduler at ADDR (tcp://host:port)")
    where.add_argument("--scheduler-file", metavar="FILE", help="use the scheduler described by FILE")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help="worker processes of the embedded cluster (default: one per core)")
    g.add_argument("--threads-per-worker", type=positive_int, metavar="N", help="threads per worker (default 1)")
    g.add_argument("--report", metavar="FILE.html", help="save Dask's performance report to FILE.html")


@contextlib.contextmanager
def cluster_from_args(args: argparse.Namespace) -> Iterator[object]:
    """Connect as the options say; record a performance report if asked."""
    from ..cluster import connect

    with connect(args.scheduler, scheduler_file=args.scheduler_file, workers=args.workers,
                 threads_per_worker=args.threads_per_worker, echo=True) as client:
        if args.report:
            from distributed import performance_report

            with performance_report(filename=args.report):
                yield client
            print(f"Performance report: {args.report}", file=sys.stderr)
        else:
            yield client
