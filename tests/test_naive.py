"""The naive reference (tests/naive.py) against onnxruntime, ONNX's reference evaluator and scipy.ndimage.

This is what makes ``run_naive`` trustworthy as the judge of the engine: every
op, over many attribute combinations and sizes (1-pixel and odd ones
included), agrees with onnxruntime running the same graph exported by
``tests/onnx_export.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.signal import convolve2d

from naive import (
    average_pool,
    binary,
    conv2d,
    conv_transpose2d,
    hard_sigmoid,
    hard_swish,
    max_pool,
    resize,
    run_naive,
    same_pads,
)
from onnx_export import run_onnx_reference, run_onnxruntime
from pipeline.model import Model, Node
from strategies import ACTIVATIONS, COORDINATE_MODES, NEAREST_MODES, networks

RTOL = 1e-5
op_settings = settings(max_examples=80, deadline=None)


def _image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _rand(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_matches(ref: np.ndarray, got: np.ndarray, rtol: float = RTOL) -> None:
    """Equal shapes, and every value within ``rtol`` of the reference's scale (max abs, at least 1)."""
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    assert np.all(np.isfinite(ref)) and np.all(np.isfinite(got))
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    err = float(np.abs(np.asarray(got, np.float64) - ref).max(initial=0.0))
    assert err <= rtol * scale, f"max abs error {err:.3g} > {rtol:g} * {scale:.3g}"


def check_vs_onnxruntime(nodes, cin: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    model = Model(nodes, input_channels=cin)
    x = _image((cin, h, w), seed)
    ref = run_naive(model, x)
    assert_matches(ref, run_onnxruntime(model, x))
    return ref


def _window_out(n, k, s, d, total):
    return (n + total - (k - 1) * d - 1) // s + 1


def _same_is_nonnegative(size, kernel, stride, dilation) -> bool:
    """onnxruntime rejects SAME padding whose (unclamped) ONNX total would be negative."""
    return all(((-(-n // s)) - 1) * s + (k - 1) * d + 1 - n >= 0
               for n, k, s, d in zip(size, kernel, stride, dilation))


# --------------------------------------------------------------------------- Conv
@op_settings
@given(
    cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), groups=st.integers(1, 3),
    kh=st.integers(1, 5), kw=st.integers(1, 5), sy=st.integers(1, 3), sx=st.integers(1, 3),
    dy=st.integers(1, 3), dx=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
    pads=st.one_of(st.sampled_from(["same", "same_lower"]), st.tuples(*[st.integers(0, 4)] * 4)),
    bias=st.booleans(), seed=st.integers(0, 1000),
)
def test_conv_matches_onnx(cin_g, cout_g, groups, kh, kw, sy, sx, dy, dx, h, w, pads, bias, seed):
    cin, cout = cin_g * groups, cout_g * groups
    if not isinstance(pads, str):
        assume(_window_out(h, kh, sy, dy, pads[0] + pads[2]) >= 1)
        assume(_window_out(w, kw, sx, dx, pads[1] + pads[3]) >= 1)
    else:
        assume(_same_is_nonnegative((h, w), (kh, kw), (sy, sx), (dy, dx)))
    weights = {"W": _rand((cout, cin_g, kh, kw), seed)}
    if bias:
        weights["B"] = _rand((cout,), seed + 1)
    node = Node("c", "Conv", ("input",), {"stride": (sy, sx), "dilation": (dy, dx), "groups": groups, "pads": pads},
                weights)
    model = Model([node], input_channels=cin)
    x = _image((cin, h, w), seed)
    ref = run_naive(model, x)
    if isinstance(pads, str) and (dy, dx) != (1, 1):
        judge = run_onnx_reference(model, x)  # onnxruntime refuses SAME_* with dilation
    else:
        judge = run_onnxruntime(model, x)
    assert_matches(ref, judge)


def test_depthwise_conv_matches_onnxruntime():
    W = _rand((6, 1, 3, 3), 1)
    node = Node("c", "Conv", ("input",), {"groups": 3, "pads": (1, 1, 1, 1), "stride": 2}, {"W": W})
    check_vs_onnxruntime([node], 3, 7, 9)


def test_conv_is_scipy_correlate():
    x = _image((1, 9, 11))
    W = _rand((1, 1, 3, 5), 2)
    got = conv2d(x, W, pads=(1, 2, 1, 2))[0]
    expected = ndi.correlate(x[0].astype(np.float64), W[0, 0].astype(np.float64), mode="constant", cval=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_dilated_strided_conv_is_subsampled_correlate_with_dilated_kernel():
    x = _image((1, 13, 12))
    W = _rand((1, 1, 3, 3), 3)
    dilated = np.zeros((5, 5))
    dilated[::2, ::2] = W[0, 0]
    full = ndi.correlate(x[0].astype(np.float64), dilated, mode="constant", cval=0.0)
    got = conv2d(x, W, dilation=(2, 2), stride=(2, 2), pads=(2, 2, 2, 2))[0]
    np.testing.assert_allclose(got, full[::2, ::2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,k,s,d", [(9, 3, 2, 2), (8, 4, 3, 1), (1, 5, 1, 3), (10, 2, 2, 1), (7, 1, 2, 1)])
def test_same_pads_follow_the_onnx_formula(n, k, s, d):
    t, l, b, r = same_pads((n, n), (k, k), (s, s), (d, d), "same")
    out = math.ceil(n / s)
    assert _window_out(n, k, s, d, t + b) == out
    assert b - t in (0, 1) and (t, b) == (l, r)
    lt, _, lb, _ = same_pads((n, n), (k, k), (s, s), (d, d), "same_lower")
    assert (lt, lb) == (b, t)


# --------------------------------------------------------------------------- ConvTranspose
@op_settings
@given(
    cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), groups=st.integers(1, 3),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3),
    dy=st.integers(1, 3), dx=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
    pads=st.tuples(*[st.integers(0, 3)] * 4), op_y=st.integers(0, 2), op_x=st.integers(0, 2),
    bias=st.booleans(), seed=st.integers(0, 1000),
)
def test_conv_transpose_matches_onnxruntime(cin_g, cout_g, groups, kh, kw, sy, sx, dy, dx, h, w, pads, op_y, op_x,
                                            bias, seed):
    assume(op_y < sy and op_x < sx)
    oh = (h - 1) * sy + (kh - 1) * dy + 1 + op_y - pads[0] - pads[2]
    ow = (w - 1) * sx + (kw - 1) * dx + 1 + op_x - pads[1] - pads[3]
    assume(oh >= 1 and ow >= 1)
    cin = cin_g * groups
    weights = {"W": _rand((cin, cout_g, kh, kw), seed)}
    if bias:
        weights["B"] = _rand((cout_g * groups,), seed + 1)
    attrs = {"stride": (sy, sx), "dilation": (dy, dx), "groups": groups, "pads": pads, "output_padding": (op_y, op_x)}
    ref = check_vs_onnxruntime([Node("t", "ConvTranspose", ("input",), attrs, weights)], cin, h, w, seed)
    assert ref.shape[1:] == (oh, ow)


def test_conv_transpose_stride_1_is_full_convolution():
    x = _image((1, 5, 7))
    W = _rand((1, 1, 3, 2), 4)
    got = conv_transpose2d(x, W)[0]
    np.testing.assert_allclose(got, convolve2d(x[0].astype(np.float64), W[0, 0].astype(np.float64), mode="full"),
                               rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- per-pixel ops
@pytest.mark.parametrize("h,w", [(1, 1), (5, 3)])
@pytest.mark.parametrize("bias", [False, True])
def test_dense_matches_onnxruntime(h, w, bias):
    weights = {"W": _rand((4, 3), 5)}
    if bias:
        weights["B"] = _rand((4,), 6)
    check_vs_onnxruntime([Node("d", "Dense", ("input",), {}, weights)], 3, h, w)


def test_batch_norm_matches_onnxruntime():
    rng = np.random.default_rng(7)
    weights = {"scale": rng.uniform(0.5, 2, 3), "bias": rng.uniform(-1, 1, 3), "mean": rng.uniform(-1, 1, 3),
               "var": rng.uniform(0.1, 3, 3)}
    check_vs_onnxruntime([Node("b", "BatchNorm", ("input",), {"epsilon": 1e-3}, weights)], 3, 4, 6)


_ACTIVATION_ATTRS = {
    "LeakyRelu": [{}, {"alpha": 0.3}],
    "Clip": [{}, {"min": -0.5}, {"max": 0.2}, {"min": 0.0, "max": 6.0}],
    "HardSigmoid": [{}, {"alpha": 1 / 6, "beta": 0.5}, {"alpha": 0.7, "beta": -0.1}],
}


@pytest.mark.parametrize(
    "op,attrs", [(op, attrs) for op in ACTIVATIONS for attrs in _ACTIVATION_ATTRS.get(op, [{}])]
)
def test_pointwise_matches_onnxruntime(op, attrs):
    check_vs_onnxruntime([Node("a", op, ("input",), attrs)], 3, 5, 7)


def test_hard_ops_follow_their_definitions():
    x = np.linspace(-8, 8, 161).reshape(1, 7, 23)
    np.testing.assert_array_equal(hard_sigmoid(x, alpha=0.2, beta=0.5), np.clip(0.2 * x + 0.5, 0, 1))
    np.testing.assert_array_equal(hard_swish(x), x * np.clip(x / 6 + 0.5, 0, 1))


# --------------------------------------------------------------------------- pools
@op_settings
@given(
    kh=st.integers(1, 4), kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3),
    dy=st.integers(1, 3), dx=st.integers(1, 3), h=st.integers(1, 10), w=st.integers(1, 10),
    pads=st.one_of(st.sampled_from(["same", "same_lower"]), st.tuples(*[st.integers(0, 3)] * 4)),
    seed=st.integers(0, 1000),
)
def test_max_pool_matches_onnxruntime(kh, kw, sy, sx, dy, dx, h, w, pads, seed):
    x = _image((2, h, w), seed)
    attrs = {"kernel": (kh, kw), "stride": (sy, sx), "dilation": (dy, dx), "pads": pads}
    if isinstance(pads, str):
        assume(_same_is_nonnegative((h, w), (kh, kw), (sy, sx), (dy, dx)))
        explicit = same_pads((h, w), (kh, kw), (sy, sx), (dy, dx), pads)
        # onnxruntime and onnx.reference both mishandle SAME pooling with dilation; the spec defines it by these pads
        np.testing.assert_array_equal(max_pool(x, **attrs), max_pool(x, **{**attrs, "pads": explicit}))
        attrs["pads"] = explicit
    t, l, b, r = attrs["pads"]
    assume(max(t, b) < kh and max(l, r) < kw)  # onnxruntime: pads smaller than the kernel
    assume(_window_out(h, kh, sy, dy, t + b) >= 1 and _window_out(w, kw, sx, dx, l + r) >= 1)
    ref = run_naive(Model([Node("p", "MaxPool", ("input",), attrs)], input_channels=2), x)
    assume(np.all(np.isfinite(ref)))  # a window made only of padding: ONNX leaves its value undefined
    assert_matches(ref, run_onnxruntime(Model([Node("p", "MaxPool", ("input",), attrs)], input_channels=2), x))


def test_max_pool_padding_never_wins():
    x = -10.0 - np.arange(12.0).reshape(1, 3, 4)
    got = max_pool(x, kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))
    expected = ndi.maximum_filter(x[0], size=3, mode="constant", cval=-np.inf)
    np.testing.assert_array_equal(got[0], expected)
    assert got.max() < -9


@op_settings
@given(
    kh=st.integers(1, 4), kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3),
    h=st.integers(1, 10), w=st.integers(1, 10), count_include_pad=st.booleans(),
    pads=st.one_of(st.sampled_from(["same", "same_lower"]), st.tuples(*[st.integers(0, 3)] * 4)),
    seed=st.integers(0, 1000),
)
def test_average_pool_matches_onnxruntime(kh, kw, sy, sx, h, w, count_include_pad, pads, seed):
    if isinstance(pads, str):
        assume(_same_is_nonnegative((h, w), (kh, kw), (sy, sx), (1, 1)))
    else:
        assume(max(pads[0], pads[2]) < kh and max(pads[1], pads[3]) < kw)
        assume(_window_out(h, kh, sy, 1, pads[0] + pads[2]) >= 1 and _window_out(w, kw, sx, 1, pads[1] + pads[3]) >= 1)
    attrs = {"kernel": (kh, kw), "stride": (sy, sx), "pads": pads, "count_include_pad": count_include_pad}
    check_vs_onnxruntime([Node("p", "AveragePool", ("input",), attrs)], 2, h, w, seed)


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_average_pool_is_scipy_uniform_filter(count_include_pad):
    x = _image((1, 6, 7)).astype(np.float64)
    got = average_pool(x, kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), count_include_pad=count_include_pad)[0]
    mean = ndi.uniform_filter(x[0], size=3, mode="constant", cval=0.0)
    if not count_include_pad:
        mean = mean / ndi.uniform_filter(np.ones_like(x[0]), size=3, mode="constant", cval=0.0)
    np.testing.assert_allclose(got, mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("h,w", [(1, 1), (4, 7)])
def test_global_pools_match_onnxruntime(op, h, w):
    ref = check_vs_onnxruntime([Node("g", op, ("input",))], 3, h, w)
    assert ref.shape == (3, 1, 1)


# --------------------------------------------------------------------------- resize
@settings(max_examples=120, deadline=None)
@given(
    mode=st.sampled_from(["nearest", "linear"]), ctm=st.sampled_from(COORDINATE_MODES),
    nearest_mode=st.sampled_from(NEAREST_MODES),
    sy=st.sampled_from([0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]), sx=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]),
    h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 1000),
)
def test_resize_matches_onnxruntime(mode, ctm, nearest_mode, sy, sx, h, w, seed):
    assume(math.floor(h * sy) >= 1 and math.floor(w * sx) >= 1)
    attrs = {"scales": (sy, sx), "mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nearest_mode}
    ref = check_vs_onnxruntime([Node("r", "Resize", ("input",), attrs)], 2, h, w, seed)
    assert ref.shape[1:] == (math.floor(h * sy), math.floor(w * sx))


def test_resize_nearest_asymmetric_by_2_repeats_pixels():
    x = _image((2, 3, 4))
    got = resize(x, scales=(2, 2), mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))


def test_resize_linear_align_corners_is_scipy_zoom_order_1():
    x = _image((1, 4, 5)).astype(np.float64)
    got = resize(x, scales=(2, 2), mode="linear", coordinate_transformation_mode="align_corners")[0]
    np.testing.assert_allclose(got, ndi.zoom(x[0], 2, order=1, grid_mode=False, mode="nearest"), atol=1e-12)


def test_resize_linear_half_pixel_extends_the_edge():
    x = np.array([[[1.0, 3.0]]])
    got = resize(x, scales=(1, 2), mode="linear")
    np.testing.assert_allclose(got[0, 0], [1.0, 1.5, 2.5, 3.0])


# --------------------------------------------------------------------------- pad, element-wise, concat
@pytest.mark.parametrize("pads,value", [((1, 2, 0, 3), 0.0), ((0, 0, 0, 0), 1.0), ((2, 2, 2, 2), -1.5)])
def test_pad_matches_onnxruntime(pads, value):
    check_vs_onnxruntime([Node("p", "Pad", ("input",), {"pads": pads, "value": value})], 2, 3, 1)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_binary_with_constant_matches_onnxruntime(op, reverse, per_channel):
    C = np.array([0.5, -2.0, 1.25]) if per_channel else np.array([-0.75])
    nodes = [Node("e", op, ("input",), {"reverse": reverse}, {"C": C})]
    if op == "Div" and reverse:  # keep the divisor away from zero
        nodes = [Node("s", "Sigmoid", ("input",)), Node("e", op, ("s",), {"reverse": True}, {"C": C})]
    check_vs_onnxruntime(nodes, 3, 4, 5)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("other", ["same", "one_channel", "one_pixel", "one_channel_first"])
def test_binary_of_two_tensors_matches_onnxruntime(op, other):
    nodes = [Node("pos", "Sigmoid", ("input",))]
    if other in ("one_channel", "one_channel_first"):
        nodes.append(Node("o", "Dense", ("input",), {}, {"W": _rand((1, 3), 8)}))
    elif other == "one_pixel":
        nodes.append(Node("o", "GlobalAveragePool", ("input",)))
    else:
        nodes.append(Node("o", "Tanh", ("input",)))
    # the divisor is the sigmoid (positive, bounded away from 0 on these inputs)
    ins = ("o", "pos") if other == "one_channel_first" or op == "Div" else ("pos", "o")
    nodes.append(Node("e", op, ins))
    check_vs_onnxruntime(nodes, 3, 5, 4)


def test_binary_reverse_swaps_operands():
    x = np.full((2, 1, 1), 4.0)
    np.testing.assert_array_equal(binary("Sub", x, np.array([1.0, 2.0]), reverse=True)[:, 0, 0], [-3.0, -2.0])
    np.testing.assert_array_equal(binary("Div", x, np.array([2.0]), reverse=False)[:, 0, 0], [2.0, 2.0])


def test_concat_and_identity_match_onnxruntime():
    nodes = [
        Node("a", "Identity", ("input",)),
        Node("b", "Relu", ("input",)),
        Node("c", "Concat", ("a", "b", "input")),
    ]
    ref = check_vs_onnxruntime(nodes, 2, 3, 5)
    assert ref.shape == (6, 3, 5)


# --------------------------------------------------------------------------- whole random networks
def _onnxruntime_or_reject(model, x):
    # onnxruntime ignores dilation when sizing SAME pooling and refuses SAME convs with dilation
    assume(not any(isinstance(n.attrs.get("pads"), str) and n.attrs.get("dilation", (1, 1)) != (1, 1)
                   for n in model.nodes))
    try:
        return run_onnxruntime(model, x)
    except Exception as exc:  # onnxruntime's own limits, not a disagreement
        message = str(exc)
        if "padding values must be non-negative" in message or "Dilation not supported" in message:
            assume(False)
        raise


@settings(max_examples=100, deadline=None)
@given(case=networks(max_depth=6))
def test_random_networks_match_onnxruntime(case):
    x = _image((case.model.input_channels, case.height, case.width))
    ref = run_naive(case.model, x)
    assert_matches(ref, _onnxruntime_or_reject(case.model, x))
