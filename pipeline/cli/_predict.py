"""``pipeline predict INPUT OUTPUT --model M``: run a network over an image into (OME-)Zarr."""

from __future__ import annotations

import argparse
import sys

from ._common import add_cluster_options, cluster_from_args, positive_int

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a network over a Zarr/OME-Zarr image, writing OME-Zarr",
        description="Run the network MODEL over INPUT block by block and write OUTPUT (OME-Zarr "
        "NGFF 0.5 with a pyramid by default). The result equals the network on the whole image.",
    )
    p.add_argument("input", metavar="INPUT", help="Zarr array or OME-Zarr image (path or fsspec URL)")
    p.add_argument("output", metavar="OUTPUT", help="output path or URL")
    p.add_argument("--model", "-m", required=True, metavar="M", help="model: .onnx file or native model directory")
    p.add_argument("--chunks", type=positive_int, metavar="N", help="compute block edge in input pixels (default: automatic)")
    p.add_argument("--channel-axis", type=int, metavar="K",
                   help="input axis holding channels (default: the OME-Zarr 'c' axis, else none)")
    p.add_argument("--level", type=int, default=0, metavar="L", help="OME-Zarr pyramid level to read (default 0)")
    p.add_argument("--normalize", default="auto", metavar="N",
                   help="input normalisation over the whole image: 'auto' (what the model's metadata "
                   "'pipeline.normalize' says, else none), 'none', 'percentile' (1, 99.8) or 'percentile:LOW:HIGH'")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    mode.add_argument("--resume", action="store_true", help="finish an interrupted run: compute only missing blocks")
    p.add_argument("--plain-zarr", action="store_true", help="write one plain Zarr v3 array instead of OME-Zarr")
    p.add_argument("--ngff", choices=("0.4", "0.5"), default="0.5",
                   help="OME-Zarr version: 0.5 (Zarr v3, default) or 0.4 (Zarr v2)")
    p.add_argument("--levels", type=positive_int, metavar="N",
                   help="pyramid levels including full resolution (default: until one chunk)")
    p.add_argument("--compression", choices=("auto", "zstd", "blosc", "none"), default="auto",
                   help="chunk codec (default auto: blosc-lz4+shuffle for float outputs, zstd for integer ones)")
    add_cluster_options(p)
    p.set_defaults(run=run)


def _output_axes(in_axes: tuple[str, ...], channel_axis: int | None) -> list[str]:
    """Axis names of predict's output: channels first before y, x, or on ``channel_axis``."""
    if channel_axis is None:
        return list(in_axes[:-2]) + ["c"] + list(in_axes[-2:])
    axes = list(in_axes)
    axes[channel_axis] = "c"
    spatial = [i for i in range(len(axes)) if i != channel_axis][-2:]
    if [axes[i] for i in spatial] != ["y", "x"] and all(axes[i].startswith("dim_") or axes[i] in ("y", "x")
                                                        for i in spatial):
        axes[spatial[0]], axes[spatial[1]] = "y", "x"  # unnamed plain array: predict's Y, X
    return axes


def _pixel_size(image, out_axes: list[str], model) -> list[float] | None:
    if image.pixel_size is None:
        return None
    size = dict(zip(image.axes, image.pixel_size))
    scale = model.geometry.scale
    size["y"] = size.get("y", 1.0) / float(scale[0])
    size["x"] = size.get("x", 1.0) / float(scale[1])
    size["c"] = 1.0
    return [float(size.get(a, 1.0)) for a in out_axes]


def run(args: argparse.Namespace) -> int:
    import pipeline
    from .. import io
    from ..cluster import compute_with_progress, warm_up
    from ..tiling import normalize_channel_axis

    image = io.open_image(args.input, level=args.level)
    model = pipeline.load_model(args.model)
    ch = args.channel_axis if args.channel_axis is not None else image.channel_axis
    ch = normalize_channel_axis(ch, image.data.ndim)
    io.check_output(args.output, overwrite=args.overwrite, resume=args.resume)
    normalize = args.normalize
    if normalize == "auto":
        normalize = model.metadata.get("pipeline.normalize") or None
    elif normalize == "none":
        normalize = None
    out = pipeline.predict(image.data, model, channel_axis=ch, chunks=args.chunks, normalize=normalize)
    axes = _output_axes(image.axes, ch)
    pixel = _pixel_size(image, axes, model)
    if not args.plain_zarr:
        order_before = list(axes)
        out, axes_t = io.ngff_order(out, tuple(axes), where=f"Output of {args.input}")
        if pixel is not None:
            pixel = [pixel[order_before.index(a)] if a in order_before else 1.0 for a in axes_t]
        axes = list(axes_t)
    names = model.metadata.get("channel_names")
    names = [str(n) for n in names] if isinstance(names, (list, tuple)) and len(names) == model.output_channels else [
        f"{model.name} {i}" for i in range(model.output_channels)]
    source = {"input": io.normalize_url(args.input), "level": args.level, "model": model.name,
              "model_fingerprint": model.fingerprint, "channel_axis": ch}
    with cluster_from_args(args) as client:
        warm_up(client, model)
        result = io.write_image(
            out, args.output, axes=axes, ome=not args.plain_zarr, ngff_version=args.ngff, channel_names=names,
            pixel_size=pixel, levels=args.levels, compression=args.compression, overwrite=args.overwrite,
            resume=args.resume, source=source, name=model.name, executor=compute_with_progress,
        )
    print(f"{args.output}: {tuple(out.shape)} {out.dtype}, axes {''.join(axes)}; "
          f"computed {result['computed']} of {result['total']} blocks", file=sys.stdout)
    return 0
