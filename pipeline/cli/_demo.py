"""``pipeline demo``: segment a large synthetic nuclei image end to end (what ``make demo`` runs)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import add_cluster_options, cluster_from_args, positive_int

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="segment a large synthetic nuclei image end to end, with a summary and a preview",
        description="Generate (or reuse) a synthetic fluorescence nuclei image as OME-Zarr, run the shipped "
        "U-Net over it on a Dask cluster, label the nuclei across blocks, measure them into a Parquet table, "
        "draw a PNG preview and print a summary. Running it again reuses finished outputs.",
    )
    p.add_argument("--size", type=positive_int, default=16384, metavar="N", help="image edge in pixels (default 16384)")
    p.add_argument("--data", default="demo-data", metavar="DIR", help="folder for the image and results (default demo-data)")
    p.add_argument("--chunks", type=positive_int, default=1024, metavar="N", help="block edge (default 1024)")
    p.add_argument("--model", metavar="M", help="model to run (default: the shipped nuclei U-Net)")
    p.add_argument("--seed", type=int, default=2026, help="seed of the synthetic image (default 2026)")
    add_cluster_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..workflow._demo import run_demo

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with cluster_from_args(args) as client:
        summary = run_demo(size=args.size, data_dir=Path(args.data), model=args.model, seed=args.seed,
                           chunks=args.chunks, client=client, log=log)
    print(summary.text())
    return 0
