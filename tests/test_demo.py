"""The demo end to end at a small size: outputs, summary numbers, and reuse on a second run."""

import numpy as np
import pandas as pd
import pytest
import zarr

from pipeline import io
from pipeline.workflow._demo import run_demo


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_demo_runs_then_reuses_everything(tmp_path, client):
    first = run_demo(size=512, data_dir=tmp_path, chunks=256, client=client, log=lambda s: None)
    assert first.size == 512 and first.blocks == 4 and not first.reused
    assert first.dice > 0.9
    assert 0 < first.objects <= first.objects_truth
    assert io.label_names(first.image) == ["truth", "nuclei"]
    table = pd.read_parquet(first.table)
    assert len(table) == first.objects
    labels = io.open_image(first.labels).data.compute()
    assert labels.max() == first.objects  # one label per object, 1..N
    assert first.preview.stat().st_size > 10_000
    text = first.text()
    for word in ("blocks", "MPix/s", "peak worker RSS", "Dice", "ground truth"):
        assert word in text

    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    second = run_demo(size=512, data_dir=tmp_path, chunks=256, client=client, log=lambda s: None)
    assert second.reused and second.seconds_generate == 0.0
    assert second.dice == first.dice and second.objects == first.objects
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten
