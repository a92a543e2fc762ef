"""Exactness: ``pipeline.predict`` on any chunking equals the whole-image network, borders included.

The judge is ``tests/naive.py`` (float64, whole image at once, itself checked
against onnxruntime in ``tests/test_naive.py``).  Networks, image sizes and
chunkings are random (``tests/strategies.py``); chunks smaller than the halo,
ragged last blocks and a single block are all drawn.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline
from naive import run_naive
from pipeline.model import Model, Node
from strategies import chunkings, networks, storage_chunks

RTOL = 1e-4
exactness_settings = settings(max_examples=150, deadline=None, derandomize=True, database=None)



class Store:
    """A sliceable store that is not a NumPy array (like a Zarr or HDF5 array): blocks read windows of it."""

    def __init__(self, data: np.ndarray):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        return self._data[index].copy()


def _image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_exact(expected_chw: np.ndarray, got: np.ndarray) -> None:
    """Every pixel within ``RTOL`` of the output's scale (max abs of the reference, at least 1)."""
    assert got.shape == expected_chw.shape, f"output shape {got.shape} != whole-image {expected_chw.shape}"
    assert got.dtype == np.float32
    assert np.all(np.isfinite(got))
    scale = max(1.0, float(np.abs(expected_chw).max(initial=0.0)))
    err = np.abs(got.astype(np.float64) - expected_chw)
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    assert float(err.max(initial=0.0)) <= RTOL * scale, (
        f"max abs error {float(err.max()):.3g} at (c, y, x) = {tuple(int(i) for i in worst)} "
        f"> {RTOL:g} * {scale:.3g}"
    )


def _predict(image, model, **kwargs) -> np.ndarray:
    return np.asarray(pipeline.predict(image, model, **kwargs).compute(scheduler="threads"))


@st.composite
def _layouts(draw, *, max_depth: int = 6, max_side: int = 24):
    """(layout, case): the image layout and a network whose input channels fit it."""
    layout = draw(st.sampled_from(["yx", "yxc", "cyx"]))
    case = draw(networks(input_channels=1 if layout == "yx" else None, max_depth=max_depth, max_side=max_side))
    return layout, case


def _arrange(image_chw: np.ndarray, layout: str) -> tuple[np.ndarray, int | None]:
    if layout == "yx":
        return image_chw[0], None
    if layout == "yxc":
        return np.moveaxis(image_chw, 0, -1).copy(), -1
    return image_chw, 0


def _to_chw(out: np.ndarray, layout: str) -> np.ndarray:
    return np.moveaxis(out, -1, 0) if layout == "yxc" else out


@exactness_settings
@given(drawn=_layouts(), data=st.data())
def test_predict_equals_whole_image_network(drawn, data):
    _check_predict_equals_naive(drawn, data)


@pytest.mark.slow
# its derandomized examples include MaxPool (2, 1) stride 2 "same_lower" on a 3 x 1 image (a regression case)
@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(drawn=_layouts(max_depth=10, max_side=40), data=st.data())
def test_predict_equals_whole_image_network_deep(drawn, data):
    _check_predict_equals_naive(drawn, data)


def _check_predict_equals_naive(drawn, data):
    layout, case = drawn
    model = case.model
    image_chw = _image((model.input_channels, case.height, case.width), seed=data.draw(st.integers(0, 99)))
    expected = run_naive(model, image_chw)
    image, channel_axis = _arrange(image_chw, layout)
    # numpy; dask built block by block (haloes from neighbour blocks); dask over a store (private windows)
    kind = data.draw(st.sampled_from(["numpy", "dask", "store"]), label="input kind")
    if kind != "numpy":
        cy, cx = data.draw(storage_chunks(case.height, case.width), label="storage chunks")
        image = da.from_array(image if kind == "dask" else Store(image),
                              chunks=(cy, cx) if layout == "yx" else ((cy, cx, -1) if layout == "yxc" else (-1, cy, cx)))
    chunks = data.draw(chunkings(case), label="chunks")
    got = _predict(image, model, channel_axis=channel_axis, chunks=chunks)
    assert_exact(expected, _to_chw(got, layout))


# --------------------------------------------------------------------------- explicit cases
def _conv(name, src, cin, cout, k, seed, **attrs) -> Node:
    W = np.random.default_rng(seed).standard_normal((cout, cin // attrs.get("groups", 1), k, k)) / k
    return Node(name, "Conv", (src,), attrs, {"W": W, "B": np.linspace(-0.5, 0.5, cout)})


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (23, 1)])
def test_one_pixel_wide_image_with_1x1_network(shape):
    model = Model(
        [
            Node("d", "Dense", ("input",), {}, {"W": [[1.5], [-2.0]], "B": [0.25, 0.0]}),
            Node("a", "Relu", ("d",)),
            _conv("c", "a", 2, 3, 1, seed=1),
        ],
        input_channels=1,
    )
    image = _image((1,) + shape)
    got = _predict(image[0], model, chunks=1)
    assert_exact(run_naive(model, image), got)


@pytest.mark.parametrize("chunks", [1, 2, 3, 5, (4, 7), 64])
def test_stride_2_conv_on_odd_sized_image(chunks):
    model = Model(
        [
            _conv("c1", "input", 2, 4, 3, seed=2, stride=2, pads=(1, 1, 1, 1)),
            Node("r", "Relu", ("c1",)),
            _conv("c2", "r", 4, 3, 3, seed=3, pads="same"),
        ],
        input_channels=2,
    )
    image = _image((15, 13, 2))
    expected = run_naive(model, np.moveaxis(image, -1, 0))
    assert expected.shape == (3, 8, 7)
    got = _predict(image, model, channel_axis=-1, chunks=chunks)
    assert_exact(expected, np.moveaxis(got, -1, 0))


def _squeeze_excitation() -> Model:
    return Model(
        [
            _conv("c", "input", 3, 4, 3, seed=4, pads=(1, 1, 1, 1)),
            Node("g", "GlobalAveragePool", ("c",)),
            Node("fc", "Dense", ("g",), {}, {"W": np.random.default_rng(5).standard_normal((4, 4)) / 2}),
            Node("s", "Sigmoid", ("fc",)),
            Node("m", "Mul", ("c", "s")),
        ],
        input_channels=3,
    )


def test_non_local_network_with_one_block_equals_whole_image():
    model = _squeeze_excitation()
    image = _image((3, 19, 22))
    with pytest.warns(UserWarning, match="block size"):
        out = pipeline.predict(image, model, channel_axis=0, chunks=(19, 22))
    assert_exact(run_naive(model, image), np.asarray(out.compute(scheduler="threads")))


def test_non_local_network_warns_with_small_blocks():
    model = _squeeze_excitation()
    image = _image((3, 20, 20))
    with pytest.warns(UserWarning, match="block size"):
        out = pipeline.predict(image, model, channel_axis=0, chunks=8)
    assert out.shape == (4, 20, 20)
    assert np.all(np.isfinite(out.compute(scheduler="threads")))


def test_local_network_does_not_warn():
    model = Model([_conv("c", "input", 1, 1, 3, seed=6, pads="same")], input_channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = pipeline.predict(_image((9, 9)), model, chunks=4)
    assert out.shape == (1, 9, 9)


def test_u_net_shaped_network_with_zarr_input(tmp_path):
    nodes = [
        _conv("e1", "input", 2, 3, 3, seed=7, pads=(1, 1, 1, 1)),
        Node("a1", "Relu", ("e1",)),
        Node("p1", "MaxPool", ("a1",), {"kernel": 2}),
        _conv("e2", "p1", 3, 4, 3, seed=8, pads="same"),
        Node("p2", "AveragePool", ("e2",), {"kernel": 3, "stride": 2, "pads": (1, 1, 1, 1)}),
        Node("u2", "Resize", ("p2",), {"scales": (2, 2), "mode": "linear"}),
        Node("s2", "Add", ("u2", "e2")),
        Node("u1", "Resize", ("s2",), {"scales": (2, 2)}),
        Node("cat", "Concat", ("u1", "a1")),
        _conv("head", "cat", 7, 2, 1, seed=9),
        Node("out", "Softmax", ("head",)),
    ]
    model = Model(nodes, input_channels=2)
    image = _image((2, 28, 36))
    store = zarr.create_array(str(tmp_path / "in.zarr"), shape=image.shape, chunks=(2, 10, 7), dtype="float32")
    store[...] = image
    got = _predict(store, model, channel_axis=0, chunks=(12, 8))
    assert_exact(run_naive(model, image), got)


# "same" padding with a stride above 1 pads differently depending on the image size modulo the stride
# (ONNX: total = (ceil(n/s) - 1) * s + (k - 1) * d + 1 - n); the halo must cover the widest case.
_SAME_CASES = [
    ("same_lower", 2, 2, 1, 9),
    ("same_lower", 2, 4, 1, 11),
    ("same", 3, 3, 1, 10),
    ("same", 2, 3, 1, 13),
    ("same_lower", 2, 3, 2, 12),
]


@pytest.mark.parametrize(
    "op,pads,stride,kernel,dilation,width",
    [pytest.param(op, *case) for op in ("Conv", "MaxPool", "AveragePool") for case in _SAME_CASES
     if op != "AveragePool" or case[3] == 1],
)
def test_same_padding_with_stride_on_every_image_size(op, pads, stride, kernel, dilation, width):
    if op == "Conv":
        node = Node("c", "Conv", ("input",), {"stride": stride, "dilation": (1, dilation), "pads": pads},
                    {"W": np.linspace(0.5, 1.5, kernel, dtype=np.float32).reshape(1, 1, 1, kernel)})
    elif op == "MaxPool":
        node = Node("c", op, ("input",), {"kernel": (1, kernel), "stride": stride, "dilation": (1, dilation),
                                          "pads": pads})
    else:
        node = Node("c", op, ("input",), {"kernel": (1, kernel), "stride": stride, "pads": pads})
    model = Model([node], input_channels=1)
    image = _image((3, width))
    for chunks in (1, stride, (3, 2 * stride)):
        assert_exact(run_naive(model, image[None]), _predict(image, model, chunks=chunks))


def test_same_padding_before_a_pad_layer_on_odd_height():
    model = Model(
        [
            Node("c", "Conv", ("input",), {"stride": 2, "dilation": (2, 1), "pads": "same"},
                 {"W": np.ones((1, 1, 2, 1), np.float32)}),
            Node("p", "Pad", ("c",), {"pads": (1, 0, 0, 0)}),
        ],
        input_channels=1,
    )
    image = _image((7, 1))
    assert_exact(run_naive(model, image[None]), _predict(image, model, chunks=1))


def test_wide_layers_give_every_pixel_the_same_bits_on_every_chunking():
    """3x3 layers of 64 channels (Winograd F(2,3) on AVX-512) computed by column pairs: blocks starting at
    odd columns still give the whole image's bits, and the whole image is the network's."""
    nodes = [
        _conv("c1", "input", 3, 64, 3, seed=11, pads=(1, 1, 1, 1)),
        Node("a1", "Relu", ("c1",)),
        _conv("c2", "a1", 64, 64, 3, seed=12, pads=(1, 1, 1, 1)),
        Node("a2", "Relu", ("c2",)),
        _conv("c3", "a2", 64, 64, 3, seed=13, pads=(1, 1, 1, 1)),
        _conv("head", "c3", 64, 2, 1, seed=14),
    ]
    model = Model(nodes, input_channels=3)
    image = _image((3, 19, 27), seed=3)
    whole = _predict(image, model, channel_axis=0, chunks=64)
    assert_exact(run_naive(model, image), whole)
    for chunks in [(7, 5), (19, 9), (4, 13), 3]:
        np.testing.assert_array_equal(_predict(image, model, channel_axis=0, chunks=chunks), whole,
                                      err_msg=f"chunks {chunks}")
