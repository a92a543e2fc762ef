"""Bounded memory: the workers' peak RSS does not grow with the image (lazy input, lazy output)."""

import resource

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import pipeline
import pipeline.io as io
from pipeline.cluster import compute_with_progress, connect

from _cluster_utils import W3, blur_model


def _pattern(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    return np.sin(y / 97.0) * np.cos(x / 53.0) * 100.0


def lazy_image(edge: int, block: int) -> da.Array:
    """An ``edge x edge`` float32 image generated block by block, never held whole."""
    return da.map_blocks(_pattern, chunks=da.core.normalize_chunks(block, (edge, edge)), dtype=np.float32)


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Discard:
    """A store target that drops what it is given (for images too large for this disk)."""

    def __setitem__(self, key, value) -> None:
        pass


def worker_peak_discarding(edge: int, block: int) -> int:
    """Peak RSS (KiB) of the single worker after predicting a lazy image and discarding the output."""
    with connect(workers=1, threads_per_worker=1, echo=None) as client:
        out = pipeline.predict(lazy_image(edge, block), blur_model(), chunks=block)
        task = da.store(out, _Discard(), lock=False, compute=False)
        client.compute(task).result()
        (peak,) = client.run(_peak_rss_kib).values()
    return peak


def worker_peak(tmp_path, edge: int, block: int) -> int:
    """Peak RSS (KiB) of the single worker process after predicting and writing the whole image."""
    with connect(workers=1, threads_per_worker=1, echo=None) as client:
        out = pipeline.predict(lazy_image(edge, block), blur_model(), chunks=block)
        io.write_image(out, tmp_path / f"o{edge}.zarr", axes=("c", "y", "x"), ome=False,
                       executor=lambda tasks, label: compute_with_progress(tasks, label, stream=None))
        (peak,) = client.run(_peak_rss_kib).values()
    z = io.open_image(tmp_path / f"o{edge}.zarr")
    assert z.data.shape == (2, edge, edge)
    # an interior window against scipy on the same generated pixels (block seams included)
    win = _pattern({None: {"array-location": [(block - 9, block + 9), (block - 9, block + 9)]}}).astype(np.float64)
    expect = np.stack([ndi.correlate(win, W3[c, 0], mode="constant")[1:-1, 1:-1] for c in range(2)])
    got = z.data[:, block - 8 : block + 8, block - 8 : block + 8].compute()
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-3)
    return peak


def _check(tmp_path, small, large, block):
    a = worker_peak(tmp_path, small, block)
    b = worker_peak(tmp_path, large, block)
    assert b <= 1.2 * a, f"worker peak RSS {a} KiB at {small}^2 px grew to {b} KiB at {large}^2 px"


def test_worker_memory_does_not_grow_with_image_size(tmp_path):
    """16 MPix and 64 MPix with 1024^2 blocks: peak RSS within 20 %."""
    _check(tmp_path, 4096, 8192, 1024)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known limitation: the overlap graph keeps rows of blocks alive (output row i needs input row i+1), "
    "so worker memory grows with the image width in blocks: measured 2153 MiB at 1 GPix and "
    "5098 MiB at 8 GPix (2048 px blocks, one worker). Fix: each block reads its halo strips privately from "
    "the source instead of from its neighbours' blocks.",
)
def test_worker_memory_1_vs_8_gigapixels():
    """1 GPix and 8 GPix, streamed through the network to a discarding sink: within 20 %.

    The output of 8 GPix (64 GiB of float32 for two channels) does not fit this
    machine's disk; the Zarr write path is covered by the test above.
    """
    a = worker_peak_discarding(32768, 2048)
    b = worker_peak_discarding(92672, 2048)
    print(f"worker peak RSS: 1 GPix {a / 1024:.0f} MiB, 8 GPix {b / 1024:.0f} MiB")
    assert b <= 1.2 * a, f"worker peak RSS {a} KiB at 1 GPix grew to {b} KiB at 8 GPix"
