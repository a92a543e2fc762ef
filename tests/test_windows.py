"""Inputs read from a store: every block reads its own haloed window, no block depends on another."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr
from dask.utils import SerializableLock

import pipeline
import pipeline.io as io
from pipeline.model import Model, Node
from pipeline.tiling._windows import window_source

W3 = np.array([[1.0, 2.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.5, 3.0]])


def _two_convs() -> Model:
    """conv3x3 -> relu -> conv3x3: a halo of 2, checked against scipy."""
    return Model(
        [
            Node("c1", "Conv", ("input",), {"pads": 1}, {"W": W3[None, None] / 4, "B": [0.1]}),
            Node("r", "Relu", ("c1",)),
            Node("c2", "Conv", ("r",), {"pads": 1}, {"W": W3[::-1][None, None] / 3}),
        ],
        input_channels=1,
        name="two convs",
    )


def _scipy_reference(image: np.ndarray) -> np.ndarray:
    y = ndi.correlate(image.astype(np.float64), W3 / 4, mode="constant") + 0.1
    return ndi.correlate(np.maximum(y, 0), W3[::-1] / 3, mode="constant")


def _zarr(tmp_path, data: np.ndarray, chunks) -> zarr.Array:
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, chunks=chunks, dtype=data.dtype)
    z[...] = data
    return z


class CountingStore:
    """A sliceable store that records every window read from it (and checks its lock is held)."""

    def __init__(self, data: np.ndarray, lock=None):
        self.data, self.lock = data, lock
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads: list[tuple] = []
        self._guard = threading.Lock()

    def __getitem__(self, index):
        window = tuple((s.start, s.stop) for s in index)
        if all(a != b for a, b in window):  # dask probes stores with empty slices for their dtype
            if self.lock is not None and self.lock.acquire(blocking=False):
                self.lock.release()
                raise AssertionError(f"window {window} read without the from_array lock held")
            with self._guard:
                self.reads.append(window)
        return self.data[index].copy()


def test_stores_are_recognised_and_computed_arrays_are_not(tmp_path):
    z = _zarr(tmp_path, np.zeros((40, 30), np.float32), (16, 16))
    recognised = {
        "from_zarr": da.from_zarr(z),
        "from_array": da.from_array(z, chunks=10),
        "inline": da.from_array(z, chunks=10, inline_array=True),
        "open_image": io.open_image(tmp_path / "in.zarr").data,
    }
    for what, arr in recognised.items():
        src = window_source(arr)
        assert src is not None, what
        assert np.asarray(src.array[0:2, 0:3]).shape == (2, 3)
    not_recognised = {
        "sliced": da.from_zarr(z)[1:],
        "cast": da.from_zarr(z).astype("f8"),
        "arithmetic": da.from_zarr(z) + 1,
        "numpy": da.from_array(np.zeros((40, 30)), chunks=10),
        "memmap": da.from_array(np.lib.format.open_memmap(tmp_path / "m.npy", "w+", np.float32, (40, 30)), chunks=10),
        "map_blocks": da.zeros((40, 30), chunks=10).map_blocks(np.negative),
    }
    for what, arr in not_recognised.items():
        assert window_source(arr) is None, what


def _predict_keys(out: da.Array) -> list:
    return [k for k in dict(out.__dask_graph__()) if isinstance(k, tuple) and k[0].startswith("predict-")]


def test_no_block_depends_on_another_block(tmp_path):
    z = _zarr(tmp_path, np.random.default_rng(0).standard_normal((100, 90)).astype(np.float32), (16, 16))
    out = pipeline.predict(z, _two_convs(), chunks=30)
    graph = dict(out.__dask_graph__())
    keys = _predict_keys(out)
    assert len(keys) == 4 * 3
    deps = dask.core.get_dependencies(graph, keys[0])
    # the store handle and the model: nothing computed from the image
    assert len(deps) == 2 and not any(isinstance(d, tuple) for d in deps)
    for k in keys:
        assert dask.core.get_dependencies(graph, k) == deps


def test_blocks_read_exactly_their_haloed_windows_and_match_scipy():
    image = np.random.default_rng(1).standard_normal((70, 50)).astype(np.float32)
    store = CountingStore(image)
    out = pipeline.predict(da.from_array(store, chunks=(25, 20)), _two_convs(), chunks=(32, 24))
    got = out.compute(scheduler="threads")
    np.testing.assert_allclose(got[0], _scipy_reference(image), rtol=1e-5, atol=1e-5)
    # blocks [0, 32, 64, 70) x [0, 24, 48, 50), halo 2, clipped to the image; each window read once
    expect = {(ys, xs) for ys in [(0, 34), (30, 66), (62, 70)] for xs in [(0, 26), (22, 50), (46, 50)]}
    assert sorted(store.reads) == sorted(expect)


def test_from_array_lock_is_held_while_reading():
    image = np.random.default_rng(2).standard_normal((40, 40)).astype(np.float32)
    lock = SerializableLock()
    store = CountingStore(image, lock=lock)
    out = pipeline.predict(da.from_array(store, chunks=20, lock=lock), _two_convs(), chunks=20)
    np.testing.assert_allclose(out.compute(scheduler="threads")[0], _scipy_reference(image), rtol=1e-5, atol=1e-5)
    assert len(store.reads) == 4


@pytest.mark.parametrize("read_once", [True, False])
def test_percentile_windows_are_read_once_when_the_image_fits(monkeypatch, read_once):
    """Percentiles from the windows' own pixels, each window read once; else a counting pass reads it all first."""
    monkeypatch.setenv("PIPELINE_READ_ONCE_BYTES", str(2**20 if read_once else 0))
    image = np.random.default_rng(5).integers(0, 3000, size=(70, 50)).astype(np.uint16)
    store = CountingStore(image)
    out = pipeline.predict(da.from_array(store, chunks=(25, 20)), _two_convs(), chunks=(32, 24), normalize=True)
    got = out.compute(scheduler="threads")
    lo, hi = np.percentile(image.astype(np.float64), [1, 99.8])
    np.testing.assert_allclose(got[0], _scipy_reference((image - lo) / (hi - lo)), rtol=1e-5, atol=1e-5)
    windows = [(ys, xs) for ys in [(0, 34), (30, 66), (62, 70)] for xs in [(0, 26), (22, 50), (46, 50)]]
    if read_once:
        assert sorted(store.reads) == sorted(windows)
    else:  # the counting pass reads the whole image (in regions of storage chunks), then every block its window
        counted = [r for r in store.reads if r not in windows]
        assert sum((b - a) * (d - c) for (a, b), (c, d) in counted) == image.size
        assert sorted(r for r in store.reads if r in windows) == sorted(windows)


@pytest.mark.parametrize("read_once", [True, False])
@pytest.mark.parametrize("normalize", [("range", -2.0, 3.0), "percentile:2:98"])
@pytest.mark.parametrize("post", [None, "argmax"])
def test_store_and_computed_inputs_give_identical_results(tmp_path, monkeypatch, normalize, post, read_once):
    """Leading axis, channels first, normalisation and a channel step: private windows == shared halos."""
    monkeypatch.setenv("PIPELINE_READ_ONCE_BYTES", str(2**20 if read_once else 0))
    rng = np.random.default_rng(3)
    image = (rng.standard_normal((3, 2, 60, 44)) * 50 + 1000).astype(np.uint16)
    z = _zarr(tmp_path, image, (1, 2, 16, 16))
    W1, W2 = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((3, 3, 3, 3))
    model = Model(
        [Node("c", "Conv", ("input",), {"pads": "same"}, {"W": W1}),
         Node("r", "Relu", ("c",)),
         Node("d", "Conv", ("r",), {"pads": "same"}, {"W": W2})],
        input_channels=2,
    )
    kwargs = dict(channel_axis=1, chunks=(20, 16), normalize=normalize, post=post)
    windowed = pipeline.predict(z, model, **kwargs)
    computed = pipeline.predict(da.from_zarr(z) + 0, model, **kwargs)  # '+ 0' hides the store
    assert window_source(da.from_zarr(z)) is not None and window_source(da.from_zarr(z) + 0) is None
    a, b = dask.compute(windowed, computed, scheduler="threads")
    assert a.shape == b.shape == ((3, 3 if post is None else 1, 60, 44))
    np.testing.assert_array_equal(a, b)
    # and the first plane against an independent whole-image computation of the same network
    x = image[0].astype(np.float64)
    if isinstance(normalize, tuple):
        x = (x - normalize[1]) / (normalize[2] - normalize[1])
    else:
        lo, hi = np.percentile(image.transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64), [2, 98], axis=1)
        x = (x - lo[:, None, None]) / (hi - lo)[:, None, None]
    h = np.maximum([sum(ndi.correlate(x[c], W1[o, c], mode="constant") for c in range(2)) for o in range(3)], 0)
    y = np.array([sum(ndi.correlate(h[c], W2[o, c], mode="constant") for c in range(3)) for o in range(3)])
    if post is None:
        np.testing.assert_allclose(a[0], y, rtol=1e-4, atol=1e-3 * np.abs(y).max())
    else:
        agree = (a[0, 0] == np.argmax(y, axis=0)).mean()
        assert agree > 0.999


def test_masked_blocks_are_never_read():
    image = np.random.default_rng(4).standard_normal((64, 64)).astype(np.float32)
    store = CountingStore(image)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    out = pipeline.predict(da.from_array(store, chunks=16), _two_convs(), chunks=32, mask=mask, fill_value=-1)
    got = out.compute(scheduler="threads")[0]
    assert store.reads == [((0, 34), (0, 34))]
    np.testing.assert_allclose(got[:32, :32], _scipy_reference(image)[:32, :32], rtol=1e-5, atol=1e-5)
    assert np.all(got[32:] == -1) and np.all(got[:, 32:] == -1)
