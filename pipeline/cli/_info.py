"""``pipeline info PATH``: describe an array/image (and its completion) or a model."""

from __future__ import annotations

import argparse
import os

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a Zarr/OME-Zarr output (shape, chunks, dtype, axes, completion) or a model",
        description="For an array or image: shape, chunks, dtype, axes, pyramid levels and whether a "
        "pipeline run completed it (complete, partial with blocks done/total, or absent). "
        "For a model (.onnx file or native model directory): its summary.",
    )
    p.add_argument("path", metavar="PATH")
    p.set_defaults(run=run)


def _is_model(path: str) -> bool:
    return path.lower().endswith(".onnx") or os.path.isfile(os.path.join(path, "model.json")) or (
        path.lower().endswith(".json") and os.path.isfile(path))


def run(args: argparse.Namespace) -> int:
    from .. import io

    path = args.path
    if "://" not in path and _is_model(path):
        import pipeline

        print(pipeline.load_model(path).summary())
        return 0
    state = io.output_state(path)
    if state.state == "absent":
        print(f"{path}: absent")
        return 0
    image = io.open_image(path)
    print(f"path      {image.url}")
    print(f"format    {image.format}")
    print(f"shape     {tuple(image.data.shape)}")
    print(f"chunks    {tuple(c[0] for c in image.data.chunks)}")
    print(f"dtype     {image.data.dtype}")
    print(f"axes      {''.join(image.axes) if all(len(a) == 1 for a in image.axes) else image.axes}")
    print(f"levels    {image.levels}")
    if image.channel_names:
        print(f"channels  {', '.join(image.channel_names)}")
    print(f"state     {state}")
    return 0
