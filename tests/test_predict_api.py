"""predict's contract: inputs, layouts, errors, laziness, and the model reaching each worker once."""

import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr

import pipeline
from pipeline import errors
from pipeline.model import Model, Node

rng = np.random.default_rng(1)
W3 = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)


def blur_model(channels=1):
    W = np.zeros((2, channels, 3, 3), np.float32)
    W[:, :1] = W3
    return Model([Node("c", "Conv", ("input",), {"pads": 1}, {"W": W})], input_channels=channels, name="two filters")


def reference(img):
    # independent: scipy's correlate with zero padding ('constant', cval=0)
    return np.stack([ndi.correlate(img.astype(np.float64), W3[c, 0], mode="constant", cval=0.0) for c in range(2)])


def test_numpy_yx_gives_channel_first():
    img = rng.normal(size=(37, 41)).astype(np.float32)
    out = pipeline.predict(img, blur_model(), chunks=(8, 16))
    assert isinstance(out, da.Array) and out.dtype == np.float32
    assert out.shape == (2, 37, 41)
    np.testing.assert_allclose(out.compute(), reference(img), atol=1e-5)


def test_channel_axis_is_kept_and_leading_axes_map_planes():
    img = rng.normal(size=(3, 20, 22)).astype(np.float32)  # (t, y, x) with one channel
    stack = np.stack([img, np.zeros_like(img)], axis=-1)  # (t, y, x, c)
    out = pipeline.predict(stack, blur_model(2), channel_axis=-1, chunks=7).compute()
    assert out.shape == (3, 20, 22, 2)
    for t in range(3):
        np.testing.assert_allclose(np.moveaxis(out[t], -1, 0), reference(img[t]), atol=1e-5)
    out0 = pipeline.predict(np.moveaxis(stack, -1, 1), blur_model(2), channel_axis=1, chunks=9).compute()
    np.testing.assert_allclose(np.moveaxis(out0, 1, -1), out, atol=1e-6)


def test_zarr_array_and_path_inputs(tmp_path):
    img = rng.integers(0, 1000, size=(40, 30)).astype(np.uint16)
    z = zarr.create_array(tmp_path / "img.zarr", shape=img.shape, chunks=(7, 11), dtype=img.dtype)
    z[:] = img
    for source in (z, str(tmp_path / "img.zarr"), da.from_zarr(z)):
        out = pipeline.predict(source, blur_model(), chunks=16).compute()
        np.testing.assert_allclose(out, reference(img), rtol=1e-5, atol=1e-2)


def test_lazy_until_computed():
    calls = []

    def spy(block):
        calls.append(block.shape)
        return block

    img = da.from_array(rng.normal(size=(64, 64)).astype(np.float32), chunks=16).map_blocks(spy, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    out = pipeline.predict(img, blur_model(), chunks=32)
    assert calls == []
    out[:, :8, :8].compute()
    assert calls


def test_wrong_channel_count():
    img = rng.normal(size=(3, 10, 10))
    with pytest.raises(errors.ChannelError, match="'two filters' expects 1 input channel.*3 channels on axis 0"):
        pipeline.predict(img, blur_model(), channel_axis=0)


def test_wrong_ndim():
    with pytest.raises(errors.ShapeError, match="at least 2 dimensions"):
        pipeline.predict(np.zeros(10), blur_model())
    with pytest.raises(errors.ShapeError, match="at least 3 dimensions"):
        pipeline.predict(np.zeros((10, 10)), blur_model(), channel_axis=0)


def test_non_numeric_dtype():
    with pytest.raises(errors.DTypeError, match="numeric.*<U1"):
        pipeline.predict(np.full((8, 8), "a"), blur_model())
    with pytest.raises(errors.DTypeError, match="complex"):
        pipeline.predict(np.zeros((8, 8), complex), blur_model())


def test_channel_axis_out_of_range():
    with pytest.raises(errors.ChannelError, match="channel_axis 3 is out of range.*3 dimensions"):
        pipeline.predict(np.zeros((1, 8, 8)), blur_model(), channel_axis=3)


def test_bad_chunks():
    with pytest.raises(errors.InputError, match="chunks"):
        pipeline.predict(np.zeros((8, 8)), blur_model(), chunks=(0, 4))


def test_image_size_not_multiple_of_stride_names_the_multiple():
    W = rng.normal(size=(1, 2, 1, 1))
    m = Model([Node("p", "MaxPool", ("input",), {"kernel": 2}), Node("u", "Resize", ("p",), {"scales": (2, 2)}),
               Node("cat", "Concat", ("u", "input")), Node("o", "Conv", ("cat",), {}, {"W": W})], input_channels=1)
    with pytest.raises(errors.ShapeError, match="multiples of 2 x 2"):
        pipeline.predict(np.zeros((15, 16)), m)


def test_non_local_model_warns():
    m = Model([Node("g", "GlobalAveragePool", ("input",)), Node("m", "Mul", ("input", "g"))], input_channels=1)
    img = rng.normal(size=(12, 12)).astype(np.float32)
    with pytest.warns(UserWarning, match="depends on the block size"):
        out = pipeline.predict(img, m, chunks=12).compute()
    np.testing.assert_allclose(out[0], img * img.mean(), rtol=1e-5, atol=1e-6)


def test_task_names_are_readable():
    out = pipeline.predict(np.zeros((16, 16)), blur_model(), chunks=8)
    assert any(str(k).startswith("predict-two_filters") for k in out.__dask_graph__().layers)


def test_auto_chunks_respects_stride_and_image():
    m = Model([Node("p", "MaxPool", ("input",), {"kernel": 4})], input_channels=1)
    out = pipeline.predict(np.zeros((1000, 30)), m)
    assert out.shape == (1, 250, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.predict(np.zeros((300, 300)), blur_model())


def test_model_reaches_each_worker_once_on_a_process_cluster():
    from distributed import Client, LocalCluster

    from pipeline.model._execute import plans_built

    img = rng.normal(size=(96, 96)).astype(np.float32)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = pipeline.predict(img, blur_model(), chunks=16)  # 36 blocks
        result = client.compute(out).result()
        np.testing.assert_allclose(result, reference(img), atol=1e-5)
        built = client.run(plans_built)
        assert all(n <= 1 for n in built.values()), built
        assert sum(built.values()) >= 1
        # the model is one key of the graph, shipped as a dependency, not embedded in each task
        graph = dict(out.__dask_graph__())
        model_keys = [k for k, v in graph.items() if isinstance(v, Model) or getattr(v, "value", None).__class__ is Model]
        assert len(model_keys) == 1
