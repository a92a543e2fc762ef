"""Finding a workflow's images and ordering them by priority."""

from __future__ import annotations

import glob as _glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SpecError
from ._spec import WorkflowSpec

__all__ = ["ImageJob", "discover", "order_jobs", "read_manifest"]


@dataclass(frozen=True)
class ImageJob:
    """One image of a run and its per-image options."""

    path: Path
    index: int
    priority: float = 0.0
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def read_manifest(path: Path) -> pd.DataFrame:
    """A CSV or Parquet manifest as a DataFrame."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pandas raises many parser errors
        raise SpecError(f"Manifest {str(path)!r} cannot be read as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'}: {exc}.") from None


_OPTION_COLUMNS = {"channel_axis": int, "level": int, "chunks": int}


def discover(spec: WorkflowSpec) -> list[ImageJob]:
    """The images named by the spec's glob or manifest, with per-image options."""
    if spec.inputs.glob is not None:
        pattern = str(spec.resolve(spec.inputs.glob)) if not Path(spec.inputs.glob).is_absolute() else spec.inputs.glob
        paths = sorted(Path(p) for p in _glob.glob(pattern))
        jobs = [ImageJob(p.resolve(), i) for i, p in enumerate(paths)]
    else:
        manifest = spec.resolve(spec.inputs.manifest)
        table = read_manifest(manifest)
        col = spec.inputs.path_column
        if col not in table.columns:
            raise SpecError(f"Manifest {str(manifest)!r} has no column {col!r}; columns are {list(table.columns)}.")
        jobs = []
        for i, row in enumerate(table.to_dict("records")):
            p = Path(str(row[col])).expanduser()
            p = (p if p.is_absolute() else manifest.parent / p).resolve()
            opts = {k: conv(row[k]) for k, conv in _OPTION_COLUMNS.items() if k in row and pd.notna(row[k])}
            pr = spec.inputs.priority_column
            prio = float(row[pr]) if pr and pr in row and pd.notna(row[pr]) else 0.0
            jobs.append(ImageJob(p, i, prio, opts))
    for job in jobs:
        spec.check_within_roots(job.path, f"input {job.index}")
    return jobs


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def order_jobs(spec: WorkflowSpec, jobs: list[ImageJob]) -> list[ImageJob]:
    """Jobs in the order they should start, highest priority first.

    ``oldest`` (default) and ``newest`` use the modification time, ``largest``
    and ``smallest`` the size on disk, ``column`` the manifest's priority
    column (higher first).  The returned jobs carry a Dask priority (higher
    runs first) that keeps this order on the cluster.
    """
    key = {
        "oldest": lambda j: _mtime(j.path),
        "newest": lambda j: -_mtime(j.path),
        "largest": lambda j: -_size(j.path),
        "smallest": lambda j: _size(j.path),
        "column": lambda j: -j.priority,
    }[spec.priority]
    ordered = sorted(jobs, key=lambda j: (key(j), j.index))
    n = len(ordered)
    return [ImageJob(j.path, j.index, float(n - rank), j.options) for rank, j in enumerate(ordered)]
