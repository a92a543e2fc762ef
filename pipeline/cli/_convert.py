"""``pipeline convert INPUT OUTPUT``: TIFF/BigTIFF, PNG/JPEG or Zarr into chunked (OME-)Zarr."""

from __future__ import annotations

import argparse
import sys

from ._common import positive_int

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="import a TIFF/BigTIFF, PNG/JPEG or Zarr image into chunked OME-Zarr",
        description="Copy INPUT into OUTPUT chunk by chunk (TIFFs are read through tifffile's Zarr "
        "store, never whole). OME-Zarr NGFF 0.5 with a pyramid by default.",
    )
    p.add_argument("input", metavar="INPUT", help=".tif/.tiff/.btf, .png/.jpg or a Zarr path")
    p.add_argument("output", metavar="OUTPUT", help="output path or URL")
    p.add_argument("--chunks", type=positive_int, default=1024, metavar="N", help="chunk edge along y and x (default 1024)")
    p.add_argument("--plain-zarr", action="store_true", help="write one plain Zarr v3 array instead of OME-Zarr")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dask

    from .. import io
    from ..cluster import compute_with_progress

    io.check_output(args.output, overwrite=args.overwrite, resume=False)
    with dask.config.set(scheduler="threads"):  # tifffile's store holds an open file: threads, not processes
        result = io.convert(args.input, args.output, chunks=args.chunks, ome=not args.plain_zarr,
                            overwrite=args.overwrite, executor=compute_with_progress)
    print(f"{args.output}: wrote {result['total']} blocks", file=sys.stdout)
    return 0
