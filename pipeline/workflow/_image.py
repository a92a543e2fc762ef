"""Segmenting one image end to end: convert, predict, label, measure, export.

Shared by the workflow runner, :func:`pipeline.predict_many` and the demo.
Every output is written resumably and checked before work starts: a complete
output is skipped, a partial one resumed, so running twice redoes nothing.
Each step reads the previous step's output back from disk, so the data
streams read -> compute -> write with memory bounded by blocks in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import io
from ..errors import OutputExistsError
from ..model import Model
from ..post import label as label_objects
from ..post import measure, write_table
from ..tiling import Percentile, predict
from ._records import ImageRecord

__all__ = ["SegmentOptions", "segment_image", "output_paths", "priority_executor", "ImageOutputs"]

_IMPORT_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SegmentOptions:
    """What to do with each image (the workflow's steps, resolved)."""

    model: Model
    chunks: int | tuple[int, int] | None = None
    channel_axis: int | None = None
    level: int = 0
    normalize: Any = "percentile"
    post: str | None = None
    output_channel: int | None = None
    convert_chunks: int = 1024
    label: bool = True
    threshold: float = 0.5
    label_channel: int = 0
    connectivity: int = 1
    measure: bool = True
    intensity: bool = True
    table_format: str = "parquet"
    preview: bool = False
    label_name: str = "objects"
    #: write labels into the input image's NGFF ``labels`` group instead of the prediction's
    labels_into_input: bool = False


@dataclass(frozen=True)
class ImageOutputs:
    converted: Path | None
    prediction: Path
    labels: Path
    table: Path
    preview: Path

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v is not None}


def output_paths(source: Path, out_dir: Path, name: str, opts: SegmentOptions) -> ImageOutputs:
    converted = out_dir / f"{name}.input.ome.zarr" if source.suffix.lower() in _IMPORT_SUFFIXES else None
    pred = out_dir / f"{name}.ome.zarr"
    holder = (converted or source) if opts.labels_into_input else pred
    return ImageOutputs(
        converted=converted,
        prediction=pred,
        labels=holder / "labels" / opts.label_name,
        table=out_dir / f"{name}.objects.{opts.table_format}",
        preview=out_dir / f"{name}.preview.png",
    )


def priority_executor(client, priority: float, *, progress: str | None = None) -> Callable[[list, str], None]:
    """An executor for :func:`pipeline.io.write_image` that submits with a Dask priority.

    With ``progress``, a bar labelled ``"<progress> <level>"`` goes to stderr.
    """

    def run(tasks: list, label: str) -> None:
        if not tasks:
            return
        from distributed import as_completed

        from ..cluster import ProgressBar

        bar = ProgressBar(len(tasks), f"{progress} {label}", stream=True) if progress else None
        futures = client.compute(list(tasks), priority=priority)
        try:
            for future in as_completed(futures):
                if future.status == "error":
                    future.result()
                future.release()
                if bar:
                    bar.update()
        finally:
            if bar:
                bar.close()
            for f in futures:
                f.cancel()

    return run


def _output_axes(in_axes: tuple[str, ...], ch: int | None) -> tuple[str, ...]:
    if ch is None:
        return tuple(in_axes[:-2]) + ("c",) + tuple(in_axes[-2:])
    axes = list(in_axes)
    axes[ch] = "c"
    return tuple(axes)


def _state(path: Path) -> str:
    return io.output_state(path).state


def _write_mode(path: Path) -> dict[str, bool]:
    state = _state(path)
    if state == "external":
        raise OutputExistsError(f"{str(path)!r} exists but was not written by pipeline; move it away or remove it.")
    return {"resume": state == "partial"}


def is_complete(outputs: ImageOutputs, opts: SegmentOptions) -> bool:
    """Whether every output this image should have is complete."""
    if _state(outputs.prediction) != "complete":
        return False
    if opts.label and _state(outputs.labels) != "complete":
        return False
    if opts.label and opts.measure and not outputs.table.exists():
        return False
    if opts.preview and not outputs.preview.exists():
        return False
    return True


def segment_image(
    source: Path,
    out_dir: Path,
    name: str,
    opts: SegmentOptions,
    *,
    executor: Callable[[list, str], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> ImageRecord:
    """Run the steps of ``opts`` on one image; returns its record (never raises for the image's own errors)."""
    outputs = output_paths(source, out_dir, name, opts)
    record = ImageRecord(input=str(source), outputs=outputs.as_dict())
    t0 = time.perf_counter()
    try:
        if is_complete(outputs, opts):
            record.status = "skipped"
            _fill_facts(record, outputs, opts)
            return record
        resumed = any(_state(p) == "partial" for p in (outputs.prediction, outputs.labels))
        out_dir.mkdir(parents=True, exist_ok=True)
        image_url = _convert(source, outputs, opts, executor, log)
        _predict(image_url, outputs, opts, executor, log, name)
        if opts.label:
            _label(outputs, opts, executor, log)
            if opts.measure:
                _measure(image_url, outputs, opts, log)
        if opts.preview:
            from ._preview import write_preview

            write_preview(image_url, outputs.labels if opts.label else None, outputs.preview)
        record.status = "resumed" if resumed else "done"
        _fill_facts(record, outputs, opts)
    except Exception as exc:  # one bad image must not stop the others: record it
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        log(f"{name}: failed: {record.error}")
    finally:
        record.seconds = round(time.perf_counter() - t0, 3)
    return record


def _convert(source: Path, outputs: ImageOutputs, opts: SegmentOptions, executor, log) -> Path:
    if outputs.converted is None:
        return source
    if _state(outputs.converted) != "complete":
        log(f"{source.name}: converting to {outputs.converted.name}")
        io.convert(source, outputs.converted, chunks=opts.convert_chunks, overwrite=outputs.converted.exists(),
                   executor=executor)
    return outputs.converted


def _predict(image_url: Path, outputs: ImageOutputs, opts: SegmentOptions, executor, log, name: str) -> None:
    if _state(outputs.prediction) == "complete":
        return
    img = io.open_image(image_url, level=opts.level)
    ch = opts.channel_axis if opts.channel_axis is not None else img.channel_axis
    normalize = opts.normalize
    if normalize == "percentile":
        reference = None
        if img.levels > 1:
            coarse = io.open_image(image_url, level=img.levels - 1).data
            reference = coarse if coarse.size >= 4096 else None
        normalize = Percentile(1.0, 99.8, reference=reference)
    elif isinstance(normalize, (tuple, list)):
        normalize = ("range", float(normalize[0]), float(normalize[1]))
    probs = predict(img.data, opts.model, channel_axis=ch, chunks=opts.chunks, normalize=normalize, post=opts.post)
    axes = _output_axes(img.axes, ch)
    c_axis = axes.index("c")
    if opts.output_channel is not None:
        sl = [slice(None)] * probs.ndim
        sl[c_axis] = slice(opts.output_channel, opts.output_channel + 1)
        probs = probs[tuple(sl)]
    log(f"{name}: predicting {tuple(img.data.shape)} -> {outputs.prediction.name}")
    io.write_image(probs, outputs.prediction, axes=axes, executor=executor, name=name,
                   source={"model": opts.model.fingerprint, "input": str(image_url)},
                   pixel_size=img.pixel_size if img.pixel_size and opts.model.geometry.scale == (1, 1) else None,
                   **_write_mode(outputs.prediction))


def _label(outputs: ImageOutputs, opts: SegmentOptions, executor, log) -> None:
    if _state(outputs.labels) == "complete":
        return
    pred = io.open_image(outputs.prediction)
    c_axis = pred.axes.index("c")
    channel = min(opts.label_channel, pred.data.shape[c_axis] - 1)
    labels = label_objects(pred.data, threshold=opts.threshold, channel_axis=c_axis, channel=channel,
                           connectivity=opts.connectivity, per_plane=True)
    axes = tuple(a for a in pred.axes if a != "c")
    log(f"{outputs.prediction.name}: labelling objects")
    io.write_labels(labels, outputs.labels.parent.parent, opts.label_name, axes=axes, executor=executor,
                    source={"threshold": opts.threshold, "channel": channel}, **_write_mode(outputs.labels))


def _measure(image_url: Path, outputs: ImageOutputs, opts: SegmentOptions, log) -> None:
    if outputs.table.exists():
        return
    labels = io.open_image(outputs.labels).data
    intensity, ch = None, None
    if opts.intensity:
        img = io.open_image(image_url, level=opts.level)
        if img.data.shape[-2:] == labels.shape[-2:]:
            intensity, ch = img.data, img.channel_axis
            if ch is not None and img.data.ndim - 1 != labels.ndim:
                intensity, ch = None, None
    table = measure(labels, intensity, channel_axis=ch)
    log(f"{outputs.prediction.name}: measuring objects")
    if opts.table_format == "csv":
        frame = table.compute()
        tmp = outputs.table.with_suffix(".csv.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(outputs.table)
    else:
        write_table(table, outputs.table)


def _fill_facts(record: ImageRecord, outputs: ImageOutputs, opts: SegmentOptions) -> None:
    try:
        pred = io.open_image(outputs.prediction)
        record.shape = [int(s) for s in pred.data.shape]
        record.blocks = int(np.prod(pred.data.numblocks))
        if opts.label and opts.measure and outputs.table.exists() and opts.table_format == "parquet":
            import pyarrow.parquet as pq

            record.objects = int(pq.ParquetFile(outputs.table).metadata.num_rows)
    except Exception:  # facts are informative; their absence is not a failure
        pass
