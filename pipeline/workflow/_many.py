"""The dataframe API: many images in, a table of results out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..model import Model, load_model
from ._image import SegmentOptions, priority_executor, segment_image

__all__ = ["predict_many", "object_tables"]

_RESULT_COLUMNS = ["path", "output", "labels", "table", "status", "error", "shape", "blocks", "objects", "seconds"]


def predict_many(
    table: Any,
    model: Model | str,
    *,
    output_dir: str | Path,
    path_column: str = "path",
    chunks: int | None = None,
    normalize: Any = "percentile",
    label: bool = True,
    threshold: float = 0.5,
    label_channel: int = 0,
    measure: bool = True,
    priority_column: str | None = "priority",
    max_concurrent: int = 4,
    client: Any = None,
) -> pd.DataFrame:
    """Segment every image of a table; a DataFrame of results, one row per image.

    Parameters
    ----------
    table : pandas or Dask DataFrame
        One row per image: ``path_column`` holds the Zarr/OME-Zarr/TIFF path;
        optional columns ``channel_axis``, ``level``, ``chunks`` override the
        keyword options per image, and ``priority_column`` orders the work
        (higher first; default: table order).
    model : Model or path
    output_dir : path
        Outputs are ``<stem>.ome.zarr`` (prediction, with labels in its
        ``labels`` group) and ``<stem>.objects.parquet`` per image.
    client : distributed.Client, optional
        Default: the active client, or an embedded cluster for the call.

    Returns
    -------
    pandas.DataFrame
        Columns ``path, output, labels, table, status, error, shape, blocks,
        objects, seconds``; ``status`` is ``done``, ``resumed``, ``skipped`` or
        ``failed`` (a failing image does not stop the others).
    """
    if hasattr(table, "compute") and not isinstance(table, pd.DataFrame):
        table = table.compute()
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"Expected a pandas or Dask DataFrame of images. Got {type(table).__name__} instead.")
    if path_column not in table.columns:
        raise InputError(f"Expected a column {path_column!r} of image paths. Got columns {list(table.columns)} instead.")
    model = load_model(model)
    out_dir = Path(output_dir)
    rows = table.reset_index(drop=True).to_dict("records")
    n = len(rows)
    prio = [float(r[priority_column]) if priority_column in r and pd.notna(r.get(priority_column)) else float(n - i)
            for i, r in enumerate(rows)]
    stems = [Path(str(r[path_column])).name.split(".")[0] for r in rows]
    names = [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]

    def one(i: int, client) -> dict[str, Any]:
        r = rows[i]
        opts = SegmentOptions(model=model, chunks=int(r["chunks"]) if pd.notna(r.get("chunks", None)) else chunks,
                              channel_axis=int(r["channel_axis"]) if pd.notna(r.get("channel_axis", None)) else None,
                              level=int(r["level"]) if pd.notna(r.get("level", None)) else 0,
                              normalize=normalize, label=label, threshold=threshold, label_channel=label_channel,
                              measure=measure and label)
        rec = segment_image(Path(str(r[path_column])), out_dir, names[i], opts,
                            executor=priority_executor(client, prio[i]))
        return {
            "path": str(r[path_column]),
            "output": rec.outputs.get("prediction"),
            "labels": rec.outputs.get("labels") if label else None,
            "table": rec.outputs.get("table") if label and measure else None,
            "status": rec.status,
            "error": rec.error,
            "shape": tuple(rec.shape) if rec.shape else None,
            "blocks": rec.blocks,
            "objects": rec.objects,
            "seconds": rec.seconds,
        }

    def run_all(client) -> list[dict[str, Any]]:
        from concurrent.futures import ThreadPoolExecutor

        from ..cluster import warm_up

        warm_up(client, model)
        order = sorted(range(n), key=lambda i: -prio[i])
        with ThreadPoolExecutor(max_workers=max(1, min(max_concurrent, n or 1))) as pool:
            results = dict(zip(order, pool.map(lambda i: one(i, client), order)))
        return [results[i] for i in range(n)]

    if client is None:
        try:
            from distributed import get_client

            client = get_client()
        except ValueError:
            client = None
    if client is None:
        from ..cluster import connect

        with connect(echo=None) as own:
            records = run_all(own)
    else:
        records = run_all(client)
    return pd.DataFrame(records, columns=_RESULT_COLUMNS)


def object_tables(results: pd.DataFrame):
    """One Dask DataFrame of every object of every image, with an ``image`` column.

    ``results`` is the table returned by :func:`predict_many`; images without
    a table (failed, or no measure step) are left out.
    """
    import dask.dataframe as dd

    parts = []
    for row in results.itertuples():
        if row.table and Path(row.table).exists():
            part = dd.read_parquet(row.table)
            parts.append(part.assign(image=row.path))
    if not parts:
        raise InputError("None of the results has an object table (did every image fail, or was measure off?).")
    return dd.concat(parts, ignore_index=True)
