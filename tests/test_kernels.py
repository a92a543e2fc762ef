"""Every Numba kernel against the independent naive NumPy reference (tests/naive.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from pipeline import kernels as K

rng = np.random.default_rng(11)


def hwc(x):
    return np.ascontiguousarray(np.transpose(x, (1, 2, 0)), dtype=np.float32)


def chw(x):
    return np.transpose(x, (2, 0, 1))


def close(ours, ref, tol=1e-4):
    scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol * scale)


ACTS = [
    (None, lambda y: y),
    ("Relu", naive.relu),
    ("LeakyRelu", lambda y: naive.leaky_relu(y, alpha=0.1)),
    ("Clip", lambda y: naive.clip(y, min=0.0, max=6.0)),
    ("Sigmoid", naive.sigmoid),
    ("Tanh", naive.tanh),
    ("HardSigmoid", lambda y: naive.hard_sigmoid(y, alpha=0.2, beta=0.5)),
    ("HardSwish", naive.hard_swish),
]
ACT_PARAMS = {"LeakyRelu": (0.1, 0.0), "Clip": (0.0, 6.0), "HardSigmoid": (0.2, 0.5)}


@settings(max_examples=60)
@given(
    groups_kind=st.sampled_from(["dense", "grouped", "depthwise"]),
    cin_per_group=st.integers(1, 5),
    cout_per_group=st.integers(1, 9),
    k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    extra=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    act=st.integers(0, len(ACTS) - 1),
    bias=st.booleans(),
)
def test_conv2d_matches_naive(groups_kind, cin_per_group, cout_per_group, k, stride, dilation, extra, act, bias):
    groups = {"dense": 1, "grouped": 2, "depthwise": 3}[groups_kind]
    if groups_kind == "depthwise":
        cin_per_group, cout_per_group = 1, 1
    cin, cout = cin_per_group * groups, cout_per_group * groups
    # input just large enough for the dilated kernel, plus 'extra' pixels: 1-pixel outputs included
    h = (k[0] - 1) * dilation[0] + 1 + extra[0]
    w = (k[1] - 1) * dilation[1] + 1 + extra[1]
    x = rng.normal(size=(cin, h, w)).astype(np.float32)
    W = rng.normal(size=(cout, cin_per_group, *k)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32) if bias else None
    name, ref_act = ACTS[act]
    alpha, beta = ACT_PARAMS.get(name, (0.0, 0.0))
    ours = K.conv2d(hwc(x), K.pack_conv_weights(W, groups), B, stride=stride, dilation=dilation,
                    activation=name, alpha=alpha, beta=beta)
    ref = ref_act(naive.conv2d(x, W, B, stride=stride, dilation=dilation, groups=groups))
    close(chw(ours), ref)


@settings(max_examples=40)
@given(
    groups=st.sampled_from([1, 2]),
    cin_per_group=st.integers(1, 4),
    cout_per_group=st.integers(1, 6),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    size=st.tuples(st.integers(1, 7), st.integers(1, 7)),
)
def test_conv_transpose2d_matches_naive(groups, cin_per_group, cout_per_group, k, stride, dilation, size):
    cin, cout = cin_per_group * groups, cout_per_group * groups
    x = rng.normal(size=(cin, *size)).astype(np.float32)
    W = rng.normal(size=(cin, cout_per_group, *k)).astype(np.float32)
    ours = K.conv_transpose2d(hwc(x), K.pack_conv_transpose_weights(W, groups), stride=stride, dilation=dilation)
    ref = naive.conv_transpose2d(x, W, None, stride=stride, dilation=dilation, groups=groups)
    close(chw(ours), ref)


@pytest.mark.parametrize("kernel, stride, dilation", [((2, 2), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)),
                                                      ((3, 2), (2, 1), (2, 1)), ((1, 1), (3, 3), (1, 1))])
@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 9)])
def test_max_pool_matches_naive(kernel, stride, dilation, size):
    x = rng.normal(size=(3, size[0] + (kernel[0] - 1) * dilation[0], size[1] + (kernel[1] - 1) * dilation[1]))
    ours = K.max_pool2d(hwc(x), kernel=kernel, stride=stride, dilation=dilation)
    close(chw(ours), naive.max_pool(x.astype(np.float32), kernel=kernel, stride=stride, dilation=dilation))


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("kernel, stride, pads", [((3, 3), (1, 1), (1, 1, 1, 1)), ((2, 2), (2, 2), (0, 0, 0, 0)),
                                                  ((3, 2), (2, 1), (1, 0, 1, 1)), ((5, 5), (3, 3), (2, 2, 2, 2))])
@pytest.mark.parametrize("size", [(1, 1), (6, 7), (11, 4)])
def test_avg_pool_matches_naive_with_its_own_padding(count_include_pad, kernel, stride, pads, size):
    if size[0] + pads[0] + pads[2] < kernel[0] or size[1] + pads[1] + pads[3] < kernel[1]:
        pytest.skip("image smaller than the window")
    x = rng.normal(size=(2, *size)).astype(np.float32)
    padded = np.pad(hwc(x), ((pads[0], pads[2]), (pads[1], pads[3]), (0, 0)))
    valid = (pads[0], pads[0] + size[0], pads[1], pads[1] + size[1])
    ours = K.avg_pool2d(padded, kernel=kernel, stride=stride, valid=valid, count_include_pad=count_include_pad)
    ref = naive.average_pool(x, kernel=kernel, stride=stride, pads=pads, count_include_pad=count_include_pad)
    close(chw(ours), ref)


@pytest.mark.parametrize("mode, ctm, nearest_mode", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("linear", "half_pixel", None), ("linear", "align_corners", None), ("linear", "pytorch_half_pixel", None),
    ("linear", "asymmetric", None)])
@pytest.mark.parametrize("scale", [2.0, 0.5, 3.0])
def test_resize_matches_naive(mode, ctm, nearest_mode, scale):
    from pipeline.model._geometry import resize_coordinates

    x = rng.normal(size=(3, 9, 6)).astype(np.float32)
    ref = naive.resize(x, scales=(scale, scale), mode=mode, coordinate_transformation_mode=ctm,
                       nearest_mode=nearest_mode or "round_prefer_floor")
    oh, ow = ref.shape[1:]
    cy = resize_coordinates(0, oh, 9, oh, scale, mode, ctm, nearest_mode or "round_prefer_floor")
    cx = resize_coordinates(0, ow, 6, ow, scale, mode, ctm, nearest_mode or "round_prefer_floor")
    if mode == "nearest":
        ours = K.resize_nearest(hwc(x), cy[0], cx[0])
    else:
        ours = K.resize_linear(hwc(x), *cy, *cx)
    close(chw(ours), ref)


@pytest.mark.parametrize("name, ref", ACTS[1:])
def test_activations_match_naive(name, ref):
    x = rng.normal(scale=4, size=(4, 5, 6)).astype(np.float32)
    alpha, beta = ACT_PARAMS.get(name, (0.0, 0.0))
    close(chw(K.activation(hwc(x), name, alpha, beta)), ref(x), tol=1e-5)


def test_affine_and_softmax_match_naive():
    x = rng.normal(scale=10, size=(5, 4, 3)).astype(np.float32)
    scale, shift = rng.normal(size=5), rng.normal(size=5)
    ref = naive.batch_norm(x, scale, shift, np.zeros(5), np.ones(5), epsilon=0.0)
    close(chw(K.affine_channels(hwc(x), scale, shift)), ref, tol=1e-5)
    close(chw(K.softmax_channels(hwc(x))), naive.softmax(x), tol=1e-6)


def test_packed_weights_are_aligned():
    for W, g in [(rng.normal(size=(32, 32, 3, 3)), 1), (rng.normal(size=(8, 1, 3, 3)), 8)]:
        packed = K.pack_conv_weights(W, g)
        assert packed.weights.ctypes.data % 32 == 0
