"""Resume: interrupted writes finish by computing only the missing blocks, to the same bytes."""

import json
import threading

import dask
import dask.array as da
import numpy as np
import pytest

import pipeline.io as io
from pipeline import errors

from _cluster_utils import kill_group, markers, resume_case, run_cli, start_cli, tree_digest, wait_for


def counted_image(calls, lock):
    """A lazy (1, 96, 80) image whose blocks record their index when computed."""

    def make(block_id=None):
        with lock:
            calls.append(block_id[1:])
        i, j = block_id[1:]
        return np.full((1, 32, 16), i * 10 + j, np.float32) + np.arange(16, dtype=np.float32)

    return da.map_blocks(make, chunks=(1, (32,) * 3, (16,) * 5), dtype=np.float32)


def interrupting(n):
    """An executor that runs the first ``n`` tasks and then fails, like a killed run."""

    def run(tasks, label):
        dask.compute(*tasks[:n])
        raise RuntimeError("killed")

    return run


def test_resume_computes_only_missing_blocks_and_matches_clean_run(tmp_path):
    lock = threading.Lock()
    with dask.config.set(scheduler="threads"):
        clean_calls = []
        io.write_image(counted_image(clean_calls, lock), tmp_path / "clean.zarr", axes=("c", "y", "x"), levels=2,
                       source={"input": "x"})
        first = []
        with pytest.raises(RuntimeError, match="killed"):
            io.write_image(counted_image(first, lock), tmp_path / "out.zarr", axes=("c", "y", "x"), levels=2,
                           source={"input": "x"}, executor=interrupting(6))
        state = io.output_state(tmp_path / "out.zarr")
        assert (state.state, state.done) == ("partial", 6) and state.total == 15 + 6
        done = {tuple(json.loads(p.read_text())["block"]) for p in markers(tmp_path / "out.zarr" / "0")}
        with pytest.raises(errors.OutputExistsError):
            io.write_image(counted_image([], lock), tmp_path / "out.zarr", axes=("c", "y", "x"), levels=2,
                           source={"input": "x"})
        second = []
        res = io.write_image(counted_image(second, lock), tmp_path / "out.zarr", axes=("c", "y", "x"), levels=2,
                             source={"input": "x"}, resume=True)
    everything = {(i, j) for i in range(3) for j in range(5)}
    assert len(done) == 6
    assert sorted(second) == sorted(everything - {(i, j) for _, i, j in done})  # compute skipped, not only writes
    assert res == {"computed": 9 + 6, "total": 21}
    assert tree_digest(tmp_path / "out.zarr") == tree_digest(tmp_path / "clean.zarr")
    assert io.output_state(tmp_path / "out.zarr").state == "complete"
    again = []
    with dask.config.set(scheduler="threads"):
        assert io.write_image(counted_image(again, lock), tmp_path / "out.zarr", axes=("c", "y", "x"), levels=2,
                              source={"input": "x"}, resume=True)["computed"] == 0
    assert again == []


def test_resume_refuses_a_different_run(tmp_path):
    arr = da.zeros((1, 64, 64), chunks=(1, 32, 32), dtype=np.float32)
    with dask.config.set(scheduler="threads"):
        io.write_image(arr, tmp_path / "o.zarr", axes=("c", "y", "x"), source={"model": "a"})
        before = tree_digest(tmp_path / "o.zarr", skip_markers=False)
        with pytest.raises(errors.StorageError, match="source differs"):
            io.write_image(arr, tmp_path / "o.zarr", axes=("c", "y", "x"), source={"model": "b"}, resume=True)
        with pytest.raises(errors.StorageError, match="layout differs"):
            io.write_image(arr.rechunk((1, 16, 16)), tmp_path / "o.zarr", axes=("c", "y", "x"), source={"model": "a"},
                           resume=True)
    assert tree_digest(tmp_path / "o.zarr", skip_markers=False) == before


def test_kill_minus_9_then_resume_cli(tmp_path):
    """kill -9 a running ``pipeline predict`` (client and its workers), rerun with --resume."""
    case = resume_case()
    out = tmp_path / "out.zarr"
    args = ("predict", case["input"], out, "--model", case["model"], "--chunks", 64, "--levels", 2, "--workers", 2)
    proc = start_cli(*args)
    total0 = 12 * 12
    try:
        wait_for(lambda: len(markers(out / "0")) >= 8, timeout=150, proc=proc)
    finally:
        kill_group(proc)
    before = {p.name: json.loads(p.read_text())["run"] for p in markers(out / "0")}
    assert 0 < len(before) < total0, "the run was not interrupted part-way"
    info = run_cli("info", out)
    assert info.returncode == 0 and "partial" in info.stdout
    assert f"/{total0 + 36} blocks" in info.stdout
    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr
    after = {p.name: json.loads(p.read_text())["run"] for p in markers(out / "0")}
    first_runs = set(before.values())
    rerun = {name for name, run in after.items() if run not in first_runs}
    assert rerun == set(after) - set(before)          # blocks done before the kill were not recomputed
    assert len(after) == total0 and f"computed {total0 - len(before) + 36} of" in res.stdout
    assert tree_digest(out) == tree_digest(case["clean"])
    assert "complete" in run_cli("info", out).stdout
