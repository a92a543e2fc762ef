"""Per-block completion markers, stored beside the chunks of the array they describe.

A marker ``<array>/.done/<i>.<j>...`` is written after all chunks of block
``(i, j, ...)`` are stored, so its presence means the block is complete.  Its
body records which run wrote it (``{"run": id, "block": [i, j, ...]}``).  The
``.done`` prefix never collides with Zarr chunk keys (``c/...`` in v3,
``i/j`` or ``i.j`` in v2) and is ignored by Zarr and by NGFF readers.
"""

from __future__ import annotations

import json
import os

from ._paths import filesystem, is_local, join, local_path

__all__ = ["marker_dir", "write_marker", "read_markers"]

DONE = ".done"


def marker_dir(array_url: str) -> str:
    return join(array_url, DONE)


def _name(index: tuple[int, ...]) -> str:
    return ".".join(str(int(i)) for i in index)


def write_marker(array_url: str, index: tuple[int, ...], run_id: str) -> None:
    """Record block ``index`` of the array at ``array_url`` as complete."""
    body = json.dumps({"run": run_id, "block": [int(i) for i in index]}).encode()
    target = join(marker_dir(array_url), _name(index))
    if is_local(target):
        path = local_path(target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
        return
    fs, path = filesystem(target)
    fs.pipe_file(path, body)


def read_markers(array_url: str, *, with_runs: bool = False) -> dict[tuple[int, ...], str | None]:
    """Blocks recorded complete: ``{index: run id (if with_runs) or None}``."""
    out: dict[tuple[int, ...], str | None] = {}
    directory = marker_dir(array_url)
    if is_local(directory):
        path = local_path(directory)
        names = os.listdir(path) if os.path.isdir(path) else []
        read = lambda n: open(os.path.join(path, n), "rb").read()  # noqa: E731
    else:
        fs, path = filesystem(directory)
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.isdir(path) else []
        read = lambda n: fs.cat_file(f"{path}/{n}")  # noqa: E731
    for name in names:
        if name.endswith(".tmp"):
            continue
        try:
            index = tuple(int(p) for p in name.split("."))
        except ValueError:
            continue
        run = None
        if with_runs:
            try:
                run = json.loads(read(name)).get("run")
            except (ValueError, OSError):
                run = None
        out[index] = run
    return out
