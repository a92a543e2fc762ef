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


def _pattern_window(ys: slice, xs: slice) -> np.ndarray:
    y = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None]
    x = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :]
    return np.sin(y / 97.0) * np.cos(x / 53.0) * 100.0


def _pattern(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    return _pattern_window(slice(y0, y1), slice(x0, x1))


class PatternStore:
    """An ``edge x edge`` float32 image computed from coordinates for any window asked for (never held whole).

    Like a Zarr array on disk it is a store that any window can be read from,
    so ``pipeline.predict`` reads each block's haloed window from it directly.
    """

    def __init__(self, edge: int):
        self.shape, self.dtype, self.ndim = (edge, edge), np.dtype(np.float32), 2

    def __getitem__(self, index) -> np.ndarray:
        ys, xs = (slice(*s.indices(n)[:2]) for s, n in zip(index, self.shape))
        return _pattern_window(ys, xs)


def lazy_image(edge: int, block: int, kind: str = "store") -> da.Array:
    """An ``edge x edge`` float32 image generated block by block, never held whole.

    ``kind="store"``: read from a :class:`PatternStore`; ``kind="graph"``: a
    Dask graph of generated blocks (``map_blocks``), whose halos blocks take
    from their neighbours.
    """
    if kind == "store":
        return da.from_array(PatternStore(edge), chunks=block)
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
        out = pipeline.predict(lazy_image(edge, block, "store"), blur_model(), chunks=block)
        task = da.store(out, _Discard(), lock=False, compute=False)
        client.compute(task).result()
        (peak,) = client.run(_peak_rss_kib).values()
    return peak


def worker_peak(tmp_path, edge: int, block: int, kind: str) -> int:
    """Peak RSS (KiB) of the single worker process after predicting and writing the whole image."""
    with connect(workers=1, threads_per_worker=1, echo=None) as client:
        out = pipeline.predict(lazy_image(edge, block, kind), blur_model(), chunks=block)
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


@pytest.mark.parametrize("kind", ["store", "graph"])
def test_worker_memory_does_not_grow_with_image_size(tmp_path, kind):
    """16 MPix and 64 MPix with 1024^2 blocks, written to Zarr: peak RSS within 20 %."""
    a = worker_peak(tmp_path, 4096, 1024, kind)
    b = worker_peak(tmp_path, 8192, 1024, kind)
    assert b <= 1.2 * a, f"worker peak RSS {a} KiB at 4096^2 px grew to {b} KiB at 8192^2 px ({kind} input)"


@pytest.mark.slow
def test_worker_memory_1_vs_8_gigapixels():
    """1 GPix and 8 GPix read from a store, streamed through the network to a discarding sink: within 20 %.

    The output of 8 GPix (64 GiB of float32 for two channels) does not fit this
    machine's disk; the Zarr write path is covered by the test above.
    """
    a = worker_peak_discarding(32768, 2048)
    b = worker_peak_discarding(92672, 2048)
    print(f"worker peak RSS: 1 GPix {a / 1024:.0f} MiB, 8 GPix {b / 1024:.0f} MiB")
    assert b <= 1.2 * a, f"worker peak RSS {a} KiB at 1 GPix grew to {b} KiB at 8 GPix"
