"""Running a workflow: many images as concurrent, prioritised Dask work; a record per run."""

from __future__ import annotations

import datetime as _dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import SpecError
from ..model import load_model
from ._image import SegmentOptions, priority_executor, segment_image
from ._inputs import ImageJob, discover, order_jobs
from ._records import ImageRecord, RunRecord, append_record, package_versions
from ._spec import WorkflowSpec, load_spec

__all__ = ["run_workflow", "options_from_spec", "records_path"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def records_path(spec: WorkflowSpec) -> Path:
    """Where the run records of ``spec`` go (``records:`` or ``<output dir>/<name>.runs.jsonl``)."""
    if spec.records:
        return spec.resolve(spec.records)
    return spec.resolve(spec.output.dir) / f"{spec.name}.runs.jsonl"


def options_from_spec(spec: WorkflowSpec, job: ImageJob | None = None, model=None) -> SegmentOptions:
    """The per-image options of ``spec`` (manifest columns override the predict step)."""
    model = model if model is not None else load_model(spec.resolve(spec.model))
    pred = spec.step("predict")
    lab = spec.step("label")
    meas = spec.step("measure")
    conv = spec.step("convert")
    export = spec.step("export")
    opts = dict(job.options) if job else {}
    return SegmentOptions(
        model=model,
        chunks=opts.get("chunks", pred.chunks),
        channel_axis=opts.get("channel_axis", pred.channel_axis),
        level=opts.get("level", pred.level),
        normalize=pred.normalize,
        post=pred.post,
        output_channel=pred.output_channel,
        convert_chunks=conv.chunks if conv else 1024,
        label=lab is not None,
        threshold=lab.threshold if lab else 0.5,
        label_channel=lab.channel if lab else 0,
        connectivity=lab.connectivity if lab else 1,
        measure=meas is not None,
        intensity=meas.intensity if meas else False,
        table_format=export.table if export else "parquet",
        preview=bool(export and export.preview),
    )


def run_workflow(
    spec: WorkflowSpec | str | Path,
    *,
    log: Callable[[str], None] = print,
    client: Any = None,
) -> RunRecord:
    """Run every image of ``spec`` once; idempotent; returns (and appends) the run record.

    Images run concurrently (``cluster.max_concurrent_images`` at a time) as
    Dask work on one cluster; each image's tasks carry a priority from the
    spec's ``priority`` rule so earlier images finish first while later ones
    keep the workers busy.  An image whose outputs are complete is skipped, a
    partial one resumes, and a failing one is recorded while the others go on.
    The record's ``status`` is ``ok`` when no image failed.
    """
    if not isinstance(spec, WorkflowSpec):
        spec = load_spec(spec)
    record = RunRecord(run_id=f"{_dt.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", workflow=spec.name,
                       spec=str(Path(spec.base_dir)), start=_now(), versions=package_versions())
    try:
        jobs = order_jobs(spec, discover(spec))
        log(f"workflow {spec.name}: {len(jobs)} image(s)")
        out_dir = spec.resolve(spec.output.dir)
        if client is None:
            from ..cluster import connect

            c = spec.cluster
            with connect(c.scheduler, scheduler_file=c.scheduler_file, workers=c.workers,
                         threads_per_worker=c.threads_per_worker, echo=None) as own:
                log(f"dashboard: {own.dashboard_link}")
                record.images = _run_jobs(spec, jobs, out_dir, own, log)
        else:
            record.images = _run_jobs(spec, jobs, out_dir, client, log)
        record.status = "failed" if any(i.status == "failed" for i in record.images) else "ok"
    except Exception as exc:  # the run itself failed: record why, then let the caller see it
        record.status = "error"
        error = str(exc) if isinstance(exc, SpecError) else f"{type(exc).__name__}: {exc}"
        record.images.append(ImageRecord(input="(workflow)", status="failed", error=error))
        raise
    finally:
        record.end = _now()
        append_record(records_path(spec), record)
    return record


def _run_jobs(spec: WorkflowSpec, jobs: list[ImageJob], out_dir: Path, client, log) -> list[ImageRecord]:
    import threading

    from ..cluster import warm_up

    model = load_model(spec.resolve(spec.model))
    names: dict[str, int] = {}
    warmed: set[str] = set()
    warm_lock = threading.Lock()

    def one(job: ImageJob) -> ImageRecord:
        name = spec.output_name(job.path, job.index)
        if name in names and names[name] != job.index:
            return ImageRecord(input=str(job.path), status="failed",
                               error=f"output name {name!r} is also the name of input {names[name]}; "
                                     "make 'output.naming' unique (e.g. add {index})")
        try:
            opts = options_from_spec(spec, job, model)
        except Exception as exc:
            return ImageRecord(input=str(job.path), status="failed", error=f"{type(exc).__name__}: {exc}")
        with warm_lock:
            if opts.model.fingerprint not in warmed:
                warm_up(client, opts.model)
                warmed.add(opts.model.fingerprint)
        rec = segment_image(job.path, out_dir, name, opts, executor=priority_executor(client, job.priority),
                            log=log)
        log(f"{name}: {rec.status} ({rec.seconds:.1f} s)")
        return rec

    for job in jobs:
        names.setdefault(spec.output_name(job.path, job.index), job.index)
    workers = max(1, min(spec.cluster.max_concurrent_images, len(jobs) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workflow") as pool:
        return list(pool.map(one, jobs))
