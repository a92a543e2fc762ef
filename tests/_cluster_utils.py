"""Helpers for the storage, cluster and CLI tests: tiny models, inputs, subprocesses, checksums."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from pipeline.config import worker_thread_env
from pipeline.model import Model, Node

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
DASK = str(Path(PY).with_name("dask"))
W3 = np.random.default_rng(7).normal(size=(2, 1, 3, 3)).astype(np.float32)


def blur_model(name: str = "blur") -> Model:
    """One 3x3 convolution, one input channel, two output channels, zero padding."""
    return Model([Node("c", "Conv", ("input",), {"pads": 1}, {"W": W3})], input_channels=1, name=name)


def deep_model() -> Model:
    """Three 3x3 convolutions with ReLUs (halo 3): enough work per block to interrupt a run."""
    rng = np.random.default_rng(3)
    w = lambda *s: (rng.normal(size=s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    return Model(
        [
            Node("c1", "Conv", ("input",), {"pads": 1}, {"W": w(8, 1, 3, 3)}),
            Node("r1", "Relu", ("c1",)),
            Node("c2", "Conv", ("r1",), {"pads": 1}, {"W": w(8, 8, 3, 3)}),
            Node("r2", "Relu", ("c2",)),
            Node("c3", "Conv", ("r2",), {"pads": 1}, {"W": w(2, 8, 3, 3)}),
        ],
        input_channels=1,
        name="deep",
    )


def write_input(path, shape=(300, 260), chunks=(64, 64), dtype="uint16", seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, size=shape).astype(dtype)
    z = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype)
    z[:] = data
    return data


def run_cli(*args, timeout=180, **kwargs) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` in a subprocess; stdout and stderr captured as text."""
    return subprocess.run([PY, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), **kwargs)


def start_cli(*args, **kwargs) -> subprocess.Popen:
    """``python -m pipeline ARGS`` in its own process group (so kill -9 reaches its workers)."""
    return subprocess.Popen([PY, "-m", "pipeline", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT), start_new_session=True, **kwargs)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def markers(array_dir) -> list[Path]:
    d = Path(array_dir) / ".done"
    return sorted(p for p in d.iterdir() if not p.name.endswith(".tmp")) if d.is_dir() else []


def wait_for(predicate, *, timeout=120.0, interval=0.01, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(interval)
    raise TimeoutError("condition not reached")


def tree_digest(root, *, skip_markers=True) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (completion markers left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_markers:
            dirnames[:] = [d for d in dirnames if d != ".done"]
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@functools.cache
def resume_case() -> dict[str, str]:
    """Input, model and an uninterrupted CLI run shared by the resume and worker-fault tests."""
    base = Path(tempfile.mkdtemp(prefix="pipeline-resume-case-"))
    write_input(base / "in.zarr", shape=(768, 768), chunks=(128, 128), dtype="float32", seed=5)
    deep_model().save(base / "model")
    res = run_cli("predict", base / "in.zarr", base / "clean.zarr", "--model", base / "model", "--chunks", 64,
                  "--levels", 2, "--workers", 2)
    assert res.returncode == 0, res.stderr
    return {"base": str(base), "input": str(base / "in.zarr"), "model": str(base / "model"),
            "clean": str(base / "clean.zarr")}


class DaskProcesses:
    """A ``dask scheduler`` and worker subprocesses on 127.0.0.1, torn down on exit."""

    def __init__(self, tmp: Path, n_workers: int = 2):
        self.tmp, self.n_workers = Path(tmp), n_workers
        self.scheduler_file = str(self.tmp / "scheduler.json")
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "DaskProcesses":
        env = {**os.environ, **worker_thread_env(1)}
        log = open(self.tmp / "dask.log", "w")
        self.procs.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
             "--scheduler-file", self.scheduler_file], stdout=log, stderr=log, env=env, start_new_session=True))
        wait_for(lambda: os.path.exists(self.scheduler_file), timeout=60)
        for _ in range(self.n_workers):
            self.procs.append(subprocess.Popen(
                [DASK, "worker", "--scheduler-file", self.scheduler_file, "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--memory-limit", "2GiB"], stdout=log, stderr=log, env=env, start_new_session=True))
        from distributed import Client

        with Client(scheduler_file=self.scheduler_file, timeout="60s") as client:
            client.wait_for_workers(self.n_workers, timeout=60)
        return self

    def worker_pids(self) -> dict[str, int]:
        from distributed import Client

        with Client(scheduler_file=self.scheduler_file, timeout="60s") as client:
            return client.run(os.getpid)

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)
