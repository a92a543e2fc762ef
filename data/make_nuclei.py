"""Write a synthetic nuclei image and its labels to Zarr, or a PNG preview to look at.

Examples
--------
    .venv/bin/python data/make_nuclei.py out.zarr --shape 8192 8192 --seed 7
    .venv/bin/python data/make_nuclei.py preview.png --shape 512 512 --seed 7

A ``.zarr`` path gets two arrays, ``image`` (uint16) and ``labels`` (int32),
written chunk by chunk without holding the image in memory.  A ``.png`` path
gets a side-by-side preview: the image (percentile-stretched) and the label
outlines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="a .zarr directory or a .png file")
    parser.add_argument("--shape", type=int, nargs=2, default=(2048, 2048), metavar=("Y", "X"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def _write_zarr(path: Path, image, labels, *, overwrite: bool) -> None:
    import dask.array as da
    import zarr

    if path.exists() and not overwrite:
        sys.exit(f"{path} exists; pass --overwrite to replace it.")
    root = zarr.open_group(str(path), mode="w")
    targets = []
    for name, array in (("image", image), ("labels", labels)):
        targets.append(root.create_array(name, shape=array.shape, chunks=array.chunksize, dtype=array.dtype))
    da.store([image, labels], targets, lock=False)


def _preview_png(path: Path, image: np.ndarray, labels: np.ndarray) -> None:
    from skimage.io import imsave
    from skimage.segmentation import find_boundaries

    lo, hi = np.percentile(image, (1, 99.8))
    grey = np.clip((image - lo) / (hi - lo), 0, 1)
    outlines = find_boundaries(labels, mode="inner")
    overlay = np.stack([grey, grey, grey], axis=-1)
    overlay[outlines] = (1.0, 0.2, 0.2)
    panel = np.concatenate([np.stack([grey] * 3, axis=-1), overlay], axis=1)
    imsave(str(path), (panel * 255).astype(np.uint8), check_contrast=False)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline.synthetic import nuclei

    image, labels = nuclei(tuple(args.shape), seed=args.seed, chunks=args.chunks)
    if args.output.suffix.lower() == ".png":
        import dask

        _preview_png(args.output, *dask.compute(image, labels))
    else:
        _write_zarr(args.output, image, labels, overwrite=args.overwrite)
    print(f"wrote {args.output} ({args.shape[0]}x{args.shape[1]}, seed {args.seed})")


if __name__ == "__main__":
    main()
