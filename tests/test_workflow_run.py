"""Shipped workflows on small generated images, on a real multi-process cluster."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import pipeline
from pipeline import io
from pipeline.synthetic import nuclei
from pipeline.workflow import load_spec, object_tables, predict_many, read_records, records_path, run_workflow
from pipeline.workflow._inputs import discover, order_jobs

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data" / "models" / "nuclei-unet.onnx"


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def make_image(path: Path, seed: int, size: int = 256) -> np.ndarray:
    img, _ = nuclei((size, size), seed=seed, chunks=128)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_image(img, path, axes=("y", "x"))
    return img.compute()


def shipped_spec(name: str, tmp: Path, **replace_paths) -> Path:
    """The shipped spec with its folders moved under ``tmp`` (steps and parameters as shipped)."""
    spec = yaml.safe_load((ROOT / "workflows" / name).read_text())
    spec["model"] = str(MODEL)
    for key, value in replace_paths.items():
        section, _, field = key.partition("__")
        if field:
            spec[section][field] = value
        else:
            spec[section] = value
    spec["roots"] = [str(tmp), str(MODEL.parent)]
    path = tmp / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_nightly_workflow_runs_then_skips_then_isolates_a_corrupt_image(tmp_path, client):
    incoming = tmp_path / "incoming"
    truth = {f"slide{i}": make_image(incoming / f"slide{i}.ome.zarr", seed=500 + i) for i in range(3)}
    spec_path = shipped_spec("nightly-nuclei.yaml", tmp_path, inputs__glob=str(incoming / "*.ome.zarr"),
                             output__dir=str(tmp_path / "results"))
    spec = load_spec(spec_path)

    first = run_workflow(spec, client=client, log=lambda s: None)
    assert first.status == "ok", [(i.input, i.error) for i in first.images]
    assert sorted(i.status for i in first.images) == ["done"] * 3
    for name in truth:
        out = tmp_path / "results" / f"{name}.ome.zarr"
        assert io.output_state(out).state == "complete"
        assert io.output_state(out / "labels" / "objects").state == "complete"
        table = pd.read_parquet(tmp_path / "results" / f"{name}.objects.parquet")
        assert len(table) > 10 and {"label", "area", "centroid-0", "bbox-0"} <= set(table.columns)
        assert (tmp_path / "results" / f"{name}.preview.png").stat().st_size > 1000

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*")
              if p.is_file() and not p.name.endswith(".runs.jsonl")}
    second = run_workflow(spec, client=client, log=lambda s: None)
    assert [i.status for i in second.images] == ["skipped"] * 3
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten (the run log aside)

    # a corrupt image: garbage in one chunk; the others complete, the failure is recorded
    bad = incoming / "broken.ome.zarr"
    make_image(bad, seed=77)
    chunk = next(p for p in (bad / "0" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"\x00garbage" * 7)
    make_image(incoming / "slide3.ome.zarr", seed=503)
    third = run_workflow(spec, client=client, log=lambda s: None)
    status = {Path(i.input).name: i for i in third.images}
    assert third.status == "failed"
    assert status["broken.ome.zarr"].status == "failed"
    assert "CorruptChunkError" in status["broken.ome.zarr"].error and "c/" in status["broken.ome.zarr"].error
    assert status["slide3.ome.zarr"].status == "done"
    assert [status[f"slide{i}.ome.zarr"].status for i in range(3)] == ["skipped"] * 3

    runs = read_records(records_path(spec))
    assert [r["status"] for r in runs] == ["ok", "ok", "failed"]
    assert all(r["versions"]["numpy"] and r["end"] >= r["start"] for r in runs)


def test_tiff_manifest_workflow_through_the_cli(tmp_path):
    import tifffile

    scans = tmp_path / "scans"
    scans.mkdir()
    rows = []
    for i, prio in enumerate([1, 5]):
        img, _ = nuclei((256, 256), seed=800 + i, chunks=256)
        tifffile.imwrite(scans / f"scan{i}.tif", img.compute(), tile=(128, 128))
        rows.append({"path": f"scan{i}.tif", "priority": prio})
    rows.append({"path": "missing.tif", "priority": 3})
    pd.DataFrame(rows).to_csv(scans / "manifest.csv", index=False)
    spec_path = shipped_spec("tiff-manifest.yaml", tmp_path, inputs__manifest=str(scans / "manifest.csv"),
                             output__dir=str(tmp_path / "out"), cluster={"workers": 1, "threads_per_worker": 2})
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "pipeline", "workflow", "run", str(spec_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr  # one listed scan is missing
    assert "missing.tif" in proc.stderr
    assert (tmp_path / "out" / "scan0-0.objects.csv").exists() and (tmp_path / "out" / "scan1-1.objects.csv").exists()
    assert io.output_state(tmp_path / "out" / "scan1-1.input.ome.zarr").state == "complete"
    hist = subprocess.run([sys.executable, "-m", "pipeline", "workflow", "history", str(spec_path)],
                          capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0 and "failed" in hist.stdout and "missing.tif" in hist.stdout


def test_priorities_order_oldest_first_and_by_column(tmp_path):
    spec_path = tmp_path / "wf.yaml"
    (tmp_path / "in").mkdir()
    for i, name in enumerate(["b", "a", "c"]):
        p = tmp_path / "in" / f"{name}.zarr"
        p.mkdir()
        os.utime(p, (1000 + i, 1000 + i))
    spec_path.write_text(yaml.safe_dump({
        "name": "p", "roots": [str(tmp_path), str(MODEL.parent)], "inputs": {"glob": str(tmp_path / "in" / "*.zarr")},
        "model": str(MODEL), "steps": ["predict"], "output": {"dir": str(tmp_path / "out")}}))
    spec = load_spec(spec_path)
    jobs = order_jobs(spec, discover(spec))
    assert [j.path.stem for j in jobs] == ["b", "a", "c"]  # by modification time, oldest first
    assert [j.priority for j in jobs] == [3.0, 2.0, 1.0]  # Dask runs higher priorities first


def test_predict_many_and_object_tables(tmp_path, client):
    paths = [tmp_path / f"img{i}.ome.zarr" for i in range(2)]
    for i, p in enumerate(paths):
        make_image(p, seed=900 + i, size=128)
    table = pd.DataFrame({"path": [str(p) for p in paths] + [str(tmp_path / "nope.zarr")], "priority": [1, 2, 3]})
    results = predict_many(table, MODEL, output_dir=tmp_path / "out", chunks=64, label_channel=1, client=client)
    assert list(results["status"]) == ["done", "done", "failed"]
    assert "does not exist" in results["error"][2]
    assert list(results["shape"][:2]) == [(2, 128, 128)] * 2
    objects = object_tables(results)
    frame = objects.compute()
    assert set(frame["image"]) == {str(p) for p in paths}
    assert (frame.groupby("image").size() == results["objects"][:2].set_axis([str(p) for p in paths])).all()
    again = predict_many(table.iloc[:2], MODEL, output_dir=tmp_path / "out", chunks=64, client=client)
    assert list(again["status"]) == ["skipped", "skipped"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_schedule_command_stops_after_the_run_in_flight(tmp_path, sig):
    import signal

    make_image(tmp_path / "in" / "a.ome.zarr", seed=11, size=64)
    spec_path = tmp_path / "wf.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "tick", "roots": [str(tmp_path), str(MODEL.parent)],
        "inputs": {"glob": str(tmp_path / "in" / "*.ome.zarr")}, "model": str(MODEL),
        "steps": [{"predict": {"chunks": 64}}], "output": {"dir": str(tmp_path / "out")},
        "cluster": {"workers": 1, "threads_per_worker": 1}, "schedule": {"interval_seconds": 1}}))
    records = tmp_path / "out" / "tick.runs.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "workflow", "schedule", str(spec_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        # wait until the second run has started, then signal while it is in flight
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if sum("scheduled run starting" in x for x in lines) == 2:
                break
        else:
            pytest.fail("the schedule never started a second run: " + "".join(lines[-20:]))
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping after the run in flight" in err
    runs = read_records(records)
    assert len(runs) == 2  # the run in flight finished and was recorded; no third began
    assert [i["status"] for i in runs[0]["images"]] == ["done"]
    assert [i["status"] for i in runs[1]["images"]] == ["skipped"]
