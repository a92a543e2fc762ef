"""The cluster room on real multi-process clusters: embedded LocalCluster, dashboard, external scheduler, worker loss."""

import os
import signal
import sys
import threading

import dask
import numpy as np
import pytest
import requests
import scipy.ndimage as ndi

import pipeline
import pipeline.io as io
from pipeline.cluster import compute_with_progress, connect, embedded_config
from pipeline.cluster._connect import EMBEDDED_CONFIG, MALLOC_TUNABLES

from _cluster_utils import (W3, DaskProcesses, blur_model, markers, resume_case, start_cli, tree_digest, wait_for,
                            write_input)


def reference(img):
    return np.stack([ndi.correlate(img.astype(np.float64), W3[c, 0], mode="constant") for c in range(2)])


def test_embedded_cluster_runs_processes_with_thread_env_and_serves_dashboard(tmp_path):
    img = np.random.default_rng(2).normal(size=(512, 384)).astype(np.float32)
    with connect(workers=2, threads_per_worker=1, echo=None) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        pids = client.run(os.getpid)
        assert os.getpid() not in pids.values() and len(set(pids.values())) == 2  # real processes
        assert set(client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")).values()) == {"1"}
        # the lighter background settings reached the worker processes, and glibc's tunable was set before
        # they started (a worker's own environment, not the nanny's copy of it)
        tunables = os.environ.get("GLIBC_TUNABLES", MALLOC_TUNABLES)
        assert set(client.run(_spawn_env_tunables).values()) == {tunables}
        profile = EMBEDDED_CONFIG["distributed.worker.profile.interval"]
        assert set(client.run(lambda: dask.config.get("distributed.worker.profile.interval")).values()) == {profile}
        tick = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval)
        assert tick == pytest.approx(0.2)  # EMBEDDED_CONFIG's 200ms, read by the scheduler when it started
        out = pipeline.predict(img, blur_model(), chunks=64)
        job = threading.Thread(target=io.write_image, args=(out, tmp_path / "o.zarr"),
                               kwargs={"axes": ("c", "y", "x"), "executor": compute_with_progress})
        job.start()
        page = requests.get(client.dashboard_link, timeout=30)  # while the job runs
        job.join()
        assert page.status_code == 200 and "Dask" in page.text
        # block tasks split their time into fine performance metrics (dashboard, digests)
        digests = client.run(lambda dask_worker: {k[-2]: v for k, v in dask_worker.digests_total.items()
                                                  if isinstance(k, tuple) and k[0] == "execute" and k[-1] == "seconds"
                                                  and k[-2] in ("kernels", "normalise")})
        assert sum(d.get("kernels", 0) for d in digests.values()) > 0
        assert all("normalise" in d for d in digests.values() if "kernels" in d)
    np.testing.assert_allclose(io.open_image(tmp_path / "o.zarr").data.compute(), reference(img), atol=1e-4)


def test_workers_run_a_stored_image_without_importing_dask_array(tmp_path):
    """Block tasks (window reads, counts, the network, chunk writes) live in modules that leave dask.array
    (and the xarray and pandas it imports) to the client: a worker starts running blocks that much sooner."""
    img = write_input(tmp_path / "in.zarr", shape=(300, 260), chunks=(64, 64))
    mods = ("dask.array", "xarray", "pandas")
    with connect(workers=1, threads_per_worker=1, echo=None) as client:
        assert not any(any(v.values()) for v in client.run(lambda: {m: m in sys.modules for m in mods}).values())
        for normalize in ("percentile:1:99", None):  # read-once windows with their counts; plain windows
            out = pipeline.predict(str(tmp_path / "in.zarr"), blur_model(), chunks=96, normalize=normalize)
            io.write_image(out, tmp_path / f"o-{normalize}.zarr", axes=("c", "y", "x"), ome=False,
                           executor=lambda tasks, label: client.compute(tasks, sync=True))
        loaded = client.run(lambda: [m for m in mods if m in sys.modules])
        assert list(loaded.values()) == [[]], loaded
    got = io.open_image(tmp_path / "o-None.zarr").data.compute()
    np.testing.assert_allclose(got, reference(img.astype(np.float32)), atol=1e-3)


def _spawn_env_tunables():
    """``GLIBC_TUNABLES`` as this process was started with (what glibc read), not as set afterwards."""
    with open(f"/proc/{os.getpid()}/environ", "rb") as f:
        env = dict(v.split("=", 1) for v in f.read().decode().split("\0") if "=" in v)
    return env.get("GLIBC_TUNABLES")


def test_embedded_config_keeps_a_users_settings(monkeypatch):
    import dask

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    cfg = embedded_config()
    assert {k: cfg[k] for k in EMBEDDED_CONFIG} == EMBEDDED_CONFIG
    assert cfg["distributed.nanny.pre-spawn-environ"]["GLIBC_TUNABLES"] == MALLOC_TUNABLES
    # Dask's own pre-spawn settings (MALLOC_TRIM_THRESHOLD_, thread counts) are kept beside it
    assert set(dask.config.get("distributed.nanny.pre-spawn-environ")) < set(cfg["distributed.nanny.pre-spawn-environ"])
    with dask.config.set({"distributed.admin.tick.interval": "50ms", "distributed.worker.profile.interval": "20ms"}):
        cfg = embedded_config()
    assert "distributed.admin.tick.interval" not in cfg and "distributed.worker.profile.interval" not in cfg
    assert cfg["distributed.admin.system-monitor.interval"] == EMBEDDED_CONFIG["distributed.admin.system-monitor.interval"]
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert "distributed.nanny.pre-spawn-environ" not in embedded_config()


def test_external_scheduler_and_a_worker_killed_mid_job(tmp_path):
    """dask scheduler + two dask workers; kill -9 one worker while ``pipeline predict`` runs on them."""
    case = resume_case()
    out = tmp_path / "out.zarr"
    with DaskProcesses(tmp_path, n_workers=2) as cluster:
        victim = sorted(cluster.worker_pids().values())[0]
        proc = start_cli("predict", case["input"], out, "--model", case["model"], "--chunks", 64, "--levels", 2,
                         "--scheduler-file", cluster.scheduler_file)
        try:
            wait_for(lambda: len(markers(out / "0")) >= 4, timeout=150, proc=proc)
            os.kill(victim, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, stderr
        assert "Dask dashboard: http://127.0.0.1:" in stderr
    assert tree_digest(out) == tree_digest(case["clean"])


def test_progress_bar_counts_every_task_without_a_cluster(tmp_path):
    import io as stdio

    import dask

    stream = stdio.StringIO()
    tasks = [dask.delayed(int)(i) for i in range(5)]
    compute_with_progress(tasks, "demo", stream=stream)
    assert stream.getvalue().splitlines()[-1].startswith("demo [") and "5/5" in stream.getvalue()
