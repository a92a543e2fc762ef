"""predict's pre/post-processing: global normalisation, masks, channel steps, xarray."""

import threading

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import scipy.ndimage as ndi
import xarray as xr
import zarr
from zarr.storage import LocalStore, WrapperStore

import pipeline
from pipeline import errors
from pipeline.model import Model, Node
from pipeline.tiling import Percentile

rng = np.random.default_rng(7)
W = rng.normal(size=(3, 1, 3, 3)).astype(np.float32)
MODEL = Model([Node("c", "Conv", ("input",), {"pads": 1}, {"W": W})], input_channels=1, name="three")


def reference(img):
    return np.stack([ndi.correlate(img.astype(np.float64), W[c, 0], mode="constant") for c in range(3)])


# -- normalize ----------------------------------------------------------------------
def test_percentile_normalisation_equals_normalising_the_whole_image_first():
    img = rng.gamma(2.0, 100.0, size=(70, 90)).astype(np.float32)
    lo, hi = np.percentile(img.astype(np.float64), [1, 99.8])
    expected = reference((img - lo) / (hi - lo))
    for chunks in (8, (16, 30), 90):
        out = pipeline.predict(da.from_array(img, chunks=13), MODEL, chunks=chunks, normalize=True).compute()
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int8", "int16", "bool", "float32"]),
    n=st.integers(1, 3000),
    channels=st.integers(1, 3),
    pieces=st.integers(1, 12),
    q=st.tuples(st.floats(0, 100), st.floats(0, 100)).map(sorted),
    seed=st.integers(0, 2**16),
)
def test_whole_image_percentiles_equal_numpy(dtype, n, channels, pieces, q, seed):
    """Chunk-wise histograms (integers up to 16 bits) or a gathered sort: exactly np.percentile per channel."""
    from pipeline.tiling._prepost import _delayed_percentiles

    r = np.random.default_rng(seed)
    if dtype == "bool":
        x = r.random((n, channels)) > 0.7
    elif dtype == "float32":
        x = r.normal(size=(n, channels)).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        lo = r.integers(info.min, info.max)  # narrow or full ranges of values
        x = r.integers(lo, info.max, size=(n, channels), endpoint=True).astype(dtype)
    # channels in chunks of their own too, as a channel-first Zarr array gives them
    got = _delayed_percentiles(da.from_array(x, chunks=(-(-n // pieces), 1)), q[0], q[1]).compute()
    np.testing.assert_array_equal(got, np.percentile(x.astype(np.float64), q, axis=0))



def _random_values(r, dtype, shape):
    if dtype == "bool":
        return r.random(shape) > 0.7
    if dtype == "float32":
        return r.normal(size=shape).astype(np.float32)
    info = np.iinfo(dtype)
    return r.integers(r.integers(info.min, info.max), info.max, size=shape, endpoint=True).astype(dtype)


# (store shape, channel axis, store chunks): 2-D, channels first, a leading axis with channels last, split channels
STORE_LAYOUTS = [((50, 61), None, (16, 13)), ((3, 40, 37), 0, (1, 16, 16)), ((2, 40, 37, 3), 3, (1, 10, 9, 3)),
                 ((40, 37, 2), 2, (7, 40, 1))]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int16", "bool", "float32"]),
    layout=st.sampled_from(STORE_LAYOUTS),
    region_pixels=st.sampled_from([1, 300, 2**22]),
    max_samples=st.sampled_from([2**24, 97, 500]),
    seed=st.integers(0, 2**16),
)
def test_store_percentiles_are_numpys_over_the_sampled_pixels(tmp_path_factory, dtype, layout, region_pixels,
                                                              max_samples, seed):
    """A store's regions, read and counted in parallel tasks: np.percentile over every step-th row and column."""
    import pipeline.tiling._prepost as prepost

    shape, ch, chunks = layout
    x = _random_values(np.random.default_rng(seed), dtype, shape)
    z = zarr.create_array(LocalStore(tmp_path_factory.mktemp("s") / "x.zarr"), shape=shape, chunks=chunks, dtype=x.dtype)
    z[...] = x
    arr = da.from_zarr(z)
    last = arr[..., None] if ch is None else da.moveaxis(arr, ch, -1)
    spec = Percentile(1, 99.8, max_samples=max_samples)
    old = prepost.STATS_REGION_PIXELS
    prepost.STATS_REGION_PIXELS = region_pixels
    try:
        stats = prepost.normalization_stats(last, spec, ch, image=arr)
    finally:
        prepost.STATS_REGION_PIXELS = old
    assert any(k[0].startswith("percentile-regions") for k in stats.dask if isinstance(k, tuple)), "not the store path"
    got = stats.compute(scheduler="threads")
    xl = x[..., None] if ch is None else np.moveaxis(x, ch, -1)
    n = int(np.prod(xl.shape[:-1]))
    step = max(1, int(np.ceil(np.sqrt(n / max_samples))))
    sampled = xl[..., ::step, ::step, :].reshape(-1, xl.shape[-1]).astype(np.float64)
    np.testing.assert_array_equal(got, np.percentile(sampled, [1, 99.8], axis=0))


def test_store_percentiles_read_every_chunk_once(tmp_path):
    """The statistics pass decodes each storage chunk exactly once, in a handful of tasks."""
    import pipeline.tiling._prepost as prepost

    img = rng.integers(0, 4000, size=(96, 80)).astype(np.uint16)
    z = zarr.create_array(LocalStore(tmp_path / "img.zarr"), shape=img.shape, chunks=(16, 16), dtype=img.dtype)
    z[...] = img
    store = CountingStore(LocalStore(tmp_path / "img.zarr", read_only=True))
    arr = da.from_zarr(zarr.open_array(store, mode="r"))
    old = prepost.STATS_REGION_PIXELS
    prepost.STATS_REGION_PIXELS = 32 * 32  # regions of 2 x 2 chunks
    try:
        stats = prepost.normalization_stats(arr[..., None], Percentile(), None, image=arr)
    finally:
        prepost.STATS_REGION_PIXELS = old
    regions = [k for k in stats.dask if isinstance(k, tuple) and k[0].startswith("percentile-regions")]
    assert len(regions) == 3 * 3
    got = stats.compute(scheduler="threads")
    reads = [k for k in store.reads if k.startswith("c/")]
    assert sorted(reads) == sorted(f"c/{i}/{j}" for i in range(6) for j in range(5))
    np.testing.assert_array_equal(got, np.percentile(img.astype(np.float64), [1, 99.8])[:, None])


def test_zarr_input_normalised_with_whole_image_percentiles(tmp_path):
    img = rng.integers(100, 4000, size=(60, 50)).astype(np.uint16)
    z = zarr.create_array(LocalStore(tmp_path / "img.zarr"), shape=img.shape, chunks=(16, 20), dtype=img.dtype)
    z[...] = img
    lo, hi = np.percentile(img.astype(np.float64), [1, 99.8])
    out = pipeline.predict(str(tmp_path / "img.zarr"), MODEL, chunks=24, normalize=True).compute()
    np.testing.assert_allclose(out, reference((img - lo) / (hi - lo)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "float32", "float64", "float16", "bool"])
@pytest.mark.parametrize("channels", [1, 3])
def test_block_normalisation_is_the_float64_formula_rounded_once(dtype, channels):
    """Blocks are scaled in one compiled pass (or NumPy for other dtypes): bit for bit (x - lo) / (hi - lo) in float64."""
    from pipeline.tiling._prepost import normalize_block

    r = np.random.default_rng(channels)
    x = (r.random((37, 41, channels)) * 250).astype(dtype)
    stats = np.array([[3.25, -1.0, 0.5][:channels], [200.5, 90.0, 0.5][:channels]])
    expected = ((x.astype(np.float64) - stats[0]) / np.maximum(stats[1] - stats[0], 1e-20)).astype(np.float32)
    got = normalize_block(x, True, stats)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0)

def test_uint16_image_normalised_with_whole_image_percentiles():
    img = rng.integers(100, 4000, size=(60, 50)).astype(np.uint16)
    lo, hi = np.percentile(img.astype(np.float64), [1, 99.8])
    out = pipeline.predict(da.from_array(img, chunks=(17, 23)), MODEL, chunks=24, normalize=True).compute()
    np.testing.assert_allclose(out, reference((img - lo) / (hi - lo)), rtol=1e-4, atol=1e-4)


def test_percentiles_from_a_coarse_reference_level():
    img = rng.gamma(2.0, 100.0, size=(64, 64)).astype(np.float32)
    coarse = img[::4, ::4]
    lo, hi = np.percentile(coarse.astype(np.float64), [2, 98])
    out = pipeline.predict(img, MODEL, chunks=16, normalize=Percentile(2, 98, reference=coarse)).compute()
    np.testing.assert_allclose(out, reference((img - lo) / (hi - lo)), rtol=1e-4, atol=1e-4)


def test_fixed_range_and_bad_normalize():
    img = rng.uniform(0, 255, size=(20, 20)).astype(np.float32)
    out = pipeline.predict(img, MODEL, normalize=("range", 0, 255)).compute()
    np.testing.assert_allclose(out, reference(img / 255), rtol=1e-4, atol=1e-5)
    with pytest.raises(errors.InputError, match="normalize"):
        pipeline.predict(img, MODEL, normalize="zscore")
    with pytest.raises(errors.InputError, match="low < high"):
        Percentile(99, 1)


# -- mask ---------------------------------------------------------------------------
class CountingStore(WrapperStore):
    """A real Zarr store wrapper that records which keys were read."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = []
        self._lock = threading.Lock()

    async def get(self, key, prototype, byte_range=None):
        with self._lock:
            self.reads.append(key)
        return await self._store.get(key, prototype, byte_range)

    def _with_store(self, store):
        return type(self)(store)


def test_masked_blocks_are_neither_read_nor_computed(tmp_path):
    img = rng.normal(size=(64, 64)).astype(np.float32)
    z = zarr.create_array(LocalStore(tmp_path / "img.zarr"), shape=img.shape, chunks=(16, 16), dtype="f4",
                          zarr_format=3)
    z[:] = img
    mask = np.zeros((4, 8), bool)  # one mask pixel = 16 x 8 image pixels
    mask[0, 0] = True  # touches only block (0, 0)
    store = CountingStore(LocalStore(tmp_path / "img.zarr", read_only=True))
    arr = da.from_zarr(zarr.open_array(store, mode="r"))
    out = pipeline.predict(arr, MODEL, chunks=16, mask=mask, fill_value=-1).compute(scheduler="threads")
    chunk_reads = {k for k in store.reads if k.startswith("c/")}
    # block (0, 0) and the neighbours its 1-pixel halo reaches; nothing else
    assert chunk_reads == {"c/0/0", "c/0/1", "c/1/0", "c/1/1"}, sorted(chunk_reads)
    expected = reference(img)
    np.testing.assert_allclose(out[:, :16, :16], expected[:, :16, :16], rtol=1e-4, atol=1e-5)
    rest = out.copy()
    rest[:, :16, :16] = -1
    assert (rest == -1).all()


def test_unmasked_blocks_equal_the_unmasked_run():
    img = rng.normal(size=(50, 40)).astype(np.float32)
    mask = rng.random((5, 4)) < 0.5
    out = pipeline.predict(img, MODEL, chunks=10, mask=mask).compute()
    full = reference(img)
    for i in range(5):
        for j in range(4):
            block = (slice(None), slice(10 * i, 10 * i + 10), slice(10 * j, 10 * j + 10))
            if mask[i, j]:
                np.testing.assert_allclose(out[block], full[block], rtol=1e-4, atol=1e-5)
            else:
                assert (out[block] == 0).all()


def test_bad_mask():
    with pytest.raises(errors.ShapeError, match="2-D"):
        pipeline.predict(np.zeros((8, 8)), MODEL, mask=np.ones((2, 2, 2), bool))
    with pytest.raises(errors.ShapeError, match="no larger than the image"):
        pipeline.predict(np.zeros((8, 8)), MODEL, mask=np.ones((16, 16), bool))


# -- channel steps --------------------------------------------------------------------
def test_softmax_argmax_topk_threshold():
    img = rng.normal(size=(30, 30)).astype(np.float32)
    ref = reference(img)
    e = np.exp(ref - ref.max(0))
    soft = pipeline.predict(img, MODEL, chunks=8, post="softmax").compute()
    np.testing.assert_allclose(soft, e / e.sum(0), rtol=1e-4, atol=1e-6)
    arg = pipeline.predict(img, MODEL, chunks=8, post="argmax")
    assert arg.dtype == np.int32 and arg.shape == (1, 30, 30)
    np.testing.assert_array_equal(arg.compute()[0], ref.argmax(0))
    top = pipeline.predict(img, MODEL, chunks=8, post=("topk", 2)).compute()
    np.testing.assert_array_equal(top[0], ref.argmax(0))
    second = np.argsort(-ref, axis=0, kind="stable")[1]
    np.testing.assert_array_equal(top[1], second)
    thr = pipeline.predict(img, MODEL, chunks=8, post=("threshold", 0.1)).compute()
    assert thr.dtype == np.uint8
    np.testing.assert_array_equal(thr, (ref > 0.1).astype(np.uint8))
    with pytest.raises(errors.InputError, match="k <= 3"):
        pipeline.predict(img, MODEL, post=("topk", 4))
    with pytest.raises(errors.InputError, match="post"):
        pipeline.predict(img, MODEL, post="median")


# -- xarray ---------------------------------------------------------------------------
def test_xarray_keeps_coordinates():
    data = rng.normal(size=(2, 24, 20)).astype(np.float32)
    img = xr.DataArray(data, dims=("t", "y", "x"),
                       coords={"t": [10, 20], "y": 5 + 0.5 * np.arange(24), "x": 0.25 * np.arange(20)},
                       attrs={"unit": "um"})
    out = pipeline.predict(img, MODEL, chunks=8)
    assert isinstance(out, xr.DataArray)
    assert out.dims == ("t", "c", "y", "x")
    np.testing.assert_array_equal(out.coords["t"], [10, 20])
    np.testing.assert_allclose(out.coords["y"], img.coords["y"])
    np.testing.assert_allclose(out.coords["x"], img.coords["x"])
    np.testing.assert_allclose(out.values[1], reference(data[1]), rtol=1e-4, atol=1e-5)
    chan = xr.DataArray(data[0][..., None], dims=("y", "x", "c"))
    out2 = pipeline.predict(chan, MODEL)
    assert out2.dims == ("y", "x", "c") and out2.shape == (24, 20, 3)
    with pytest.raises(errors.ShapeError, match="'y' and 'x'"):
        pipeline.predict(xr.DataArray(data, dims=("a", "b", "c")), MODEL)


def test_xarray_downsampling_model_rescales_coordinates():
    pool = Model([Node("p", "AveragePool", ("input",), {"kernel": 2})], input_channels=1)
    img = xr.DataArray(np.ones((8, 8), np.float32), dims=("y", "x"), coords={"y": np.arange(8.0), "x": np.arange(8.0)})
    out = pipeline.predict(img, pool)
    np.testing.assert_allclose(out.coords["y"], [0.5, 2.5, 4.5, 6.5])
