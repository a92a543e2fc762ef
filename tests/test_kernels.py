"""Every Numba kernel against the independent naive NumPy reference (tests/naive.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from pipeline import kernels as K
from pipeline.errors import ChannelError, InputError, ShapeError

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



@pytest.mark.parametrize("cin, cout, stride", [(16, 16, 1), (32, 16, 1), (16, 16, 2), (16, 9, 1), (17, 16, 1),
                                               (32, 48, 1), (1, 16, 1)])
@pytest.mark.parametrize("act", ["Relu", None])
def test_conv2d_long_tiles_match_naive(cin, cout, stride, act):
    """Rows of many whole tiles, so the widest tiles run, with the pixel strides some kernels take as constants."""
    x = rng.normal(size=(cin, 7, 77)).astype(np.float32)
    W = rng.normal(size=(cout, cin, 3, 3)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32)
    ours = K.conv2d(hwc(x), K.pack_conv_weights(W), B, stride=(stride, stride), activation=act)
    ref = naive.conv2d(x, W, B, stride=(stride, stride))
    close(chw(ours), naive.relu(ref) if act else ref)


def test_conv2d_window_of_two_16_channel_sources_matches_naive():
    """A decoder conv on the concat of two 16-channel maps, padded by the window: wide tiles on both sources."""
    x1 = rng.normal(size=(6, 70, 16)).astype(np.float32)
    x2 = rng.normal(size=(6, 70, 16)).astype(np.float32)
    W = rng.normal(size=(16, 32, 3, 3)).astype(np.float32)
    B = rng.normal(size=16).astype(np.float32)
    ours = K.conv2d_window([x1, x2], [(-1, -1), (-1, -1)], [K.pack_conv_weights(W[:, :16]),
                                                             K.pack_conv_weights(W[:, 16:])], B, (6, 70))
    cat = np.concatenate([x1, x2], axis=2).transpose(2, 0, 1)
    close(chw(ours), naive.conv2d(cat, W, B, pads=(1, 1, 1, 1)))

@pytest.mark.parametrize("cin, cout, k, stride, two", [(64, 64, 3, 1, False), (48, 64, 3, 1, True),
                                                       (64, 64, 3, 2, False), (64, 32, 5, 1, False)])
def test_conv2d_window_with_kernel_rows_split_into_channel_runs_matches_naive(cin, cout, k, stride, two):
    """Layers whose kernel row of weights would crowd L1 (3x3 64->64 on AVX-512) take it in runs of channels."""
    x1 = rng.normal(size=(5, 61, cin)).astype(np.float32)
    x2 = rng.normal(size=(5, 61, cin)).astype(np.float32)
    W = rng.normal(size=(cout, 2 * cin if two else cin, k, k)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32)
    xs = [x1, x2] if two else [x1]
    ws = [K.pack_conv_weights(W[:, :cin]), K.pack_conv_weights(W[:, cin:])] if two else [K.pack_conv_weights(W)]
    p = k // 2
    out = ((5 + 2 * p - k) // stride + 1, (61 + 2 * p - k) // stride + 1)
    cat = np.concatenate(xs, axis=2).transpose(2, 0, 1)
    ref = naive.conv2d(cat, W, B, stride=(stride, stride), pads=(p, p, p, p))
    for run in (None, 1, 13, cin):
        ours = K.conv2d_window(xs, [(-p, -p)] * len(xs), ws, B, out, stride=(stride, stride), activation="Relu",
                               channel_run=run)
        close(chw(ours), naive.relu(ref))


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



@pytest.mark.parametrize("cin, cout", [(32, 16), (64, 16), (64, 32), (33, 16)])
def test_conv_transpose2d_long_tiles_match_naive(cin, cout):
    """A U-Net's upsampling layers on rows of many whole tiles (constant pixel strides for some)."""
    x = rng.normal(size=(cin, 3, 40)).astype(np.float32)
    W = rng.normal(size=(cin, cout, 2, 2)).astype(np.float32)
    ours = K.conv_transpose2d(hwc(x), K.pack_conv_transpose_weights(W), stride=(2, 2))
    close(chw(ours), naive.conv_transpose2d(x, W, None, stride=(2, 2)))

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



@pytest.mark.parametrize("channels", [1, 2, 7])
def test_softmax_in_runs_of_pixels_matches_naive(monkeypatch, channels):
    """Runs of a few pixels, the last one short: every pixel is normalised once, over its own channels."""
    monkeypatch.setattr(K, "SOFTMAX_PIXELS", 7)
    x = rng.normal(scale=30, size=(channels, 9, 11)).astype(np.float32)
    x[:, 0, 0] = 80.0  # equal maxima
    close(chw(K.softmax_channels(hwc(x)[1:, 2:])), naive.softmax(x[:, 1:, 2:]), tol=1e-6)

def test_packed_weights_are_aligned():
    for W, g in [(rng.normal(size=(32, 32, 3, 3)), 1), (rng.normal(size=(8, 1, 3, 3)), 8)]:
        packed = K.pack_conv_weights(W, g)
        assert packed.weights.ctypes.data % 32 == 0


# -- windows that leave their source (the executor's in-kernel padding) ------------

def _zero_window(x_hwc, origin, size, fill=0.0):
    """``x`` read over ``[origin, origin + size)``, ``fill`` outside it (independent of the kernels)."""
    out = np.full((size[0], size[1], x_hwc.shape[2]), fill, np.float32)
    for i in range(size[0]):
        for j in range(size[1]):
            y, xx = origin[0] + i, origin[1] + j
            if 0 <= y < x_hwc.shape[0] and 0 <= xx < x_hwc.shape[1]:
                out[i, j] = x_hwc[y, xx]
    return out


@settings(max_examples=60, deadline=None)
@given(
    two=st.booleans(),
    groups=st.sampled_from([1, 1, 2]),
    c1=st.integers(1, 24),
    c2=st.integers(1, 24),
    cout=st.integers(1, 40),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    src=st.tuples(st.integers(1, 9), st.integers(1, 30)),
    out=st.tuples(st.integers(0, 8), st.integers(0, 30)),
    origin=st.tuples(st.integers(-6, 6), st.integers(-6, 6)),
    shift=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    act=st.integers(0, len(ACTS) - 1),
    channel_run=st.one_of(st.none(), st.integers(1, 7)),
)
def test_conv2d_window_matches_naive_on_zero_padded_concat(two, groups, c1, c2, cout, k, stride, dilation, src, out,
                                                           origin, shift, act, channel_run):
    if two:
        groups = 1
    c1, cout = c1 * groups, cout * groups
    x1 = rng.normal(size=(*src, c1)).astype(np.float32)
    x2 = rng.normal(size=(*src, c2)).astype(np.float32)
    # the second source is stored with other margins: its window origin differs by `shift`
    x2_stored = np.ascontiguousarray(np.pad(x2, ((shift[0], 1), (shift[1], 2), (0, 0))))
    cin = c1 + (c2 if two else 0)
    W = rng.normal(size=(cout, cin // groups, *k)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32)
    name, ref_act = ACTS[act]
    alpha, beta = ACT_PARAMS.get(name, (0.0, 0.0))
    hin = (out[0] - 1) * stride[0] + (k[0] - 1) * dilation[0] + 1
    win = (out[1] - 1) * stride[1] + (k[1] - 1) * dilation[1] + 1
    xs, origins = [x1], [origin]
    ws = [K.pack_conv_weights(W[:, :c1] if two else W, groups)]
    cat = x1
    if two:
        xs.append(x2_stored)
        origins.append((origin[0] + shift[0], origin[1] + shift[1]))
        ws.append(K.pack_conv_weights(W[:, c1:]))
        cat = np.concatenate([x1, x2], axis=2)
    ours = K.conv2d_window(xs, origins, ws, B, out, stride=stride, dilation=dilation, activation=name,
                           alpha=alpha, beta=beta, channel_run=channel_run)
    assert ours.shape == (*out, cout)
    if out[0] == 0 or out[1] == 0:
        return
    window = chw(_zero_window(cat, origin, (hin, win)))
    ref = ref_act(naive.conv2d(window, W, B, stride=stride, dilation=dilation, groups=groups))
    close(chw(ours), ref)


@settings(max_examples=50, deadline=None)
@given(
    groups=st.sampled_from([1, 2]),
    cin_per_group=st.integers(1, 6),
    cout_per_group=st.integers(1, 12),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    size=st.tuples(st.integers(1, 6), st.integers(1, 20)),
    out=st.tuples(st.integers(0, 12), st.integers(0, 40)),
    origin=st.tuples(st.integers(-5, 6), st.integers(-5, 6)),
    act=st.integers(0, len(ACTS) - 1),
)
def test_conv_transpose2d_window_matches_naive(groups, cin_per_group, cout_per_group, k, stride, dilation, size, out,
                                                origin, act):
    cin, cout = cin_per_group * groups, cout_per_group * groups
    x = rng.normal(size=(cin, *size)).astype(np.float32)
    W = rng.normal(size=(cin, cout_per_group, *k)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32)
    name, ref_act = ACTS[act]
    alpha, beta = ACT_PARAMS.get(name, (0.0, 0.0))
    ours = K.conv_transpose2d_window(hwc(x), K.pack_conv_transpose_weights(W, groups), B, origin, out, stride=stride,
                                     dilation=dilation, activation=name, alpha=alpha, beta=beta)
    assert ours.shape == (*out, cout)
    full = hwc(naive.conv_transpose2d(x, W, None, stride=stride, dilation=dilation, groups=groups))
    # outside the full transposed output only the bias remains
    window = _zero_window(full, origin, out) + B
    close(chw(ours), ref_act(chw(window)))


@pytest.mark.parametrize("cout", [5, 16, 32, 48])
@pytest.mark.parametrize("k, dilation", [((2, 2), (1, 1)), ((3, 2), (2, 1))])
@pytest.mark.parametrize("origin, out", [((0, 0), (8, 60)), ((1, 3), (7, 51)), ((-3, -5), (12, 70)),
                                         ((2, 7), (3, 9)), ((5, -1), (6, 1))])
def test_conv_transpose2d_window_by_column_pairs_matches_naive(cout, k, dilation, origin, out):
    """2-wide stride-2 upsampling, which takes both columns of an input pixel per tile, at odd, even and
    outside window origins: columns left out of the pairs are computed one by one."""
    x = rng.normal(size=(19, 4, 30)).astype(np.float32)
    W = rng.normal(size=(19, cout, *k)).astype(np.float32)
    B = rng.normal(size=cout).astype(np.float32)
    ours = K.conv_transpose2d_window(hwc(x), K.pack_conv_transpose_weights(W), B, origin, out, stride=(2, 2),
                                     dilation=dilation, activation="Relu")
    full = hwc(naive.conv_transpose2d(x, W, None, stride=(2, 2), dilation=dilation))
    close(chw(ours), naive.relu(chw(_zero_window(full, origin, out) + B)))

@pytest.mark.parametrize("kernel, stride, dilation", [((2, 2), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)),
                                                      ((3, 2), (2, 1), (2, 1))])
@pytest.mark.parametrize("channels", [3, 16, 21])
@pytest.mark.parametrize("origin", [(-1, -1), (0, 2), (-2, 1), (3, -4)])
def test_max_pool2d_window_reads_minus_inf_outside(kernel, stride, dilation, channels, origin):
    x = rng.normal(size=(7, 9, channels)).astype(np.float32)
    out = (5, 6)
    hin = (out[0] - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
    win = (out[1] - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1
    window = chw(_zero_window(x, origin, (hin, win), fill=-np.inf))
    ref = naive.max_pool(window, kernel=kernel, stride=stride, dilation=dilation)
    ours = K.max_pool2d_window(x, origin, out, kernel=kernel, stride=stride, dilation=dilation)
    np.testing.assert_array_equal(chw(ours), ref)


def test_windowed_kernels_reject_bad_input():
    packed = K.pack_conv_weights(np.ones((8, 4, 3, 3)))
    x = np.ones((5, 5, 4), np.float32)
    with pytest.raises(ChannelError, match="4 channels"):
        K.conv2d_window([np.ones((5, 5, 3), np.float32)], [(0, 0)], [packed], None, (3, 3))
    with pytest.raises(ValueError, match="one or two sources"):
        K.conv2d_window([x, x, x], [(0, 0)] * 3, [packed] * 3, None, (3, 3))
    with pytest.raises(ShapeError, match="share kernel"):
        K.conv2d_window([x, x], [(0, 0)] * 2, [packed, K.pack_conv_weights(np.ones((8, 4, 1, 1)))], None, (3, 3))
    with pytest.raises(ShapeError, match="groups == 1"):
        grouped = K.pack_conv_weights(np.ones((8, 2, 3, 3)), groups=2)
        K.conv2d_window([x, x], [(0, 0)] * 2, [grouped, grouped], None, (3, 3))
    with pytest.raises(TypeError, match="depthwise"):
        K.conv2d_window([x], [(0, 0)], [K.pack_conv_weights(np.ones((4, 1, 3, 3)), groups=4)], None, (3, 3))
    with pytest.raises(InputError, match="channel_run >= 1"):
        K.conv2d_window([x], [(0, 0)], [packed], None, (3, 3), channel_run=0)
    with pytest.raises(ShapeError, match="non-negative"):
        K.conv_transpose2d_window(x, K.pack_conv_transpose_weights(np.ones((4, 2, 2, 2))), None, (0, 0), (-1, 3))


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_streaming_stores_match_naive(monkeypatch, stride):
    """Large outputs of the memory-bound depthwise kernel bypass the caches; the values must not change."""
    monkeypatch.setattr(K, "STREAM_BYTES", 0)
    c = 3 * K.LANES + 5
    x = rng.normal(size=(c, 9, 61)).astype(np.float32)
    W = rng.normal(size=(c, 1, 3, 3)).astype(np.float32)
    B = rng.normal(size=c).astype(np.float32)
    ours = K.conv2d(hwc(x), K.pack_conv_weights(W, c), B, stride=(stride, stride), activation="Relu")
    close(chw(ours), naive.relu(naive.conv2d(x, W, B, stride=(stride, stride), groups=c)))
