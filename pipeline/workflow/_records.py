"""Run records: one JSON line per workflow run, appended, never rewritten."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ImageRecord", "RunRecord", "append_record", "read_records", "package_versions", "format_history"]


@dataclass
class ImageRecord:
    input: str
    outputs: dict[str, str] = field(default_factory=dict)
    status: str = "pending"  # done | skipped | failed | resumed
    error: str | None = None
    seconds: float = 0.0
    shape: list[int] | None = None
    blocks: int | None = None
    objects: int | None = None


@dataclass
class RunRecord:
    run_id: str
    workflow: str
    spec: str
    start: str
    end: str | None = None
    status: str = "running"  # ok | failed (some image failed) | error (the run itself failed)
    images: list[ImageRecord] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=platform.node)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("pipeline", "numpy", "numba", "dask", "distributed", "zarr", "onnx", "scikit-image"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def append_record(path: Path, record: RunRecord) -> None:
    """Append one line atomically enough for one writer (O_APPEND, one write call)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """All complete records of ``path`` (a torn last line from a crash is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def format_history(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no runs recorded"
    rows = ["run id                            start                 status   done skip fail  seconds"]
    for r in records:
        imgs = r.get("images", [])
        count = {s: sum(1 for i in imgs if i.get("status") == s) for s in ("done", "skipped", "failed", "resumed")}
        secs = sum(i.get("seconds", 0.0) for i in imgs)
        rows.append(
            f"{r['run_id']:<33} {r['start'][:19]:<21} {r.get('status', '?'):<8} "
            f"{count['done'] + count['resumed']:>4} {count['skipped']:>4} {count['failed']:>4} {secs:>8.1f}"
        )
        for i in imgs:
            if i.get("status") == "failed":
                rows.append(f"    failed: {i['input']}: {i.get('error')}")
    return "\n".join(rows)
