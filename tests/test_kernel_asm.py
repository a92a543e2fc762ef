"""The tile convolution kernels: FMA on vector registers, and exact against NumPy einsum.

The reference below is written here, in float64, from the ONNX definitions of
Conv and ConvTranspose; it shares nothing with ``pipeline.kernels``.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numba
import numpy as np
import pytest

from pipeline import kernels as K
from pipeline.config import NUMBA_FLAGS
from pipeline.errors import ChannelError, ModelError, ShapeError
from pipeline.kernels._conv import (LANES, WINOGRAD_MIN_CHANNELS, dense_kernel, depthwise_kernel, tile_shape,
                                    transpose_kernel, winograd_kernel)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


HAS_AVX2_FMA = {"avx2", "fma"} <= _cpu_flags()
def _target_has_avx512f() -> bool:
    """AVX-512F on the CPU Numba compiles for: NUMBA_CPU_FEATURES if set, else /proc/cpuinfo."""
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if features is not None:
        return "+avx512f" in features.split(",")
    return "avx512f" in _cpu_flags()


HAS_AVX512F = _target_has_avx512f()
#: The vector registers the kernels should use, read from the CPU (not from the
#: package): zmm with AVX-512F, else ymm.
REGISTER = "zmm" if HAS_AVX512F else "ymm"


# -- independent references ---------------------------------------------------

def _act_ref(y, name, alpha, beta):
    if name is None:
        return y
    if name == "Relu":
        return np.maximum(y, 0)
    if name == "LeakyRelu":
        return np.where(y >= 0, y, alpha * y)
    if name == "Clip":
        return np.clip(y, alpha, beta)
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-y))
    if name == "Tanh":
        return np.tanh(y)
    if name == "HardSigmoid":
        return np.clip(alpha * y + beta, 0, 1)
    if name == "HardSwish":
        return y * np.clip(y / 6 + 0.5, 0, 1)
    raise AssertionError(name)


def conv_ref(x, W, b, stride, dilation, groups, act=None, alpha=0.0, beta=0.0):
    """Valid conv: x (H, W, Cin), W (Cout, Cin/g, KH, KW) ONNX -> (Ho, Wo, Cout), float64."""
    x = x.astype(np.float64)
    W = W.astype(np.float64)
    cout, cig, kh, kw = W.shape
    cog = cout // groups
    (sy, sx), (dy, dx) = stride, dilation
    ho = (x.shape[0] - (kh - 1) * dy - 1) // sy + 1
    wo = (x.shape[1] - (kw - 1) * dx - 1) // sx + 1
    out = np.zeros((ho, wo, cout))
    for ky in range(kh):
        for kx in range(kw):
            tap = x[ky * dy : ky * dy + (ho - 1) * sy + 1 : sy, kx * dx : kx * dx + (wo - 1) * sx + 1 : sx]
            for g in range(groups):
                out[..., g * cog : (g + 1) * cog] += np.einsum(
                    "hwc,oc->hwo", tap[..., g * cig : (g + 1) * cig], W[g * cog : (g + 1) * cog, :, ky, kx])
    return _act_ref(out + (0 if b is None else b), act, alpha, beta)


def conv_transpose_ref(x, W, stride, dilation, groups):
    """Full transposed conv: x (H, W, Cin), W (Cin, Cout/g, KH, KW) ONNX; out[i*s + j*d] += x[i] @ W[:, :, j]."""
    x = x.astype(np.float64)
    W = W.astype(np.float64)
    cin, cog, kh, kw = W.shape
    cig = cin // groups
    (sy, sx), (dy, dx) = stride, dilation
    h, w = x.shape[:2]
    out = np.zeros(((h - 1) * sy + (kh - 1) * dy + 1, (w - 1) * sx + (kw - 1) * dx + 1, cog * groups))
    for ky in range(kh):
        for kx in range(kw):
            for g in range(groups):
                contrib = np.einsum("hwc,co->hwo", x[..., g * cig : (g + 1) * cig], W[g * cig : (g + 1) * cig, :, ky, kx])
                out[ky * dy : ky * dy + (h - 1) * sy + 1 : sy, kx * dx : kx * dx + (w - 1) * sx + 1 : sx,
                    g * cog : (g + 1) * cog] += contrib
    return out


def _close(got, want, rtol=1e-4):
    assert got.shape == want.shape
    assert got.dtype == np.float32
    scale = max(np.abs(want).max(), 1e-6)
    err = np.abs(got.astype(np.float64) - want).max() / scale
    assert err < rtol, f"max relative error {err:.2e}"


# -- the compiled code ---------------------------------------------------------

@pytest.mark.skipif(not HAS_AVX2_FMA, reason="this CPU lacks AVX2/FMA (no avx2+fma in /proc/cpuinfo flags)")
@pytest.mark.parametrize("channels", [16, 32, 64])
def test_3x3_conv_kernel_uses_fma_on_vector_registers(channels):
    assert LANES == (16 if HAS_AVX512F else 8), "the kernels' vector width does not match this CPU"
    # Compile the specialised kernel afresh (cached code cannot be inspected).
    p, cb = tile_shape(-(-channels // LANES), taps_per_row=3 * channels)  # as conv2d chooses
    flags = dict(NUMBA_FLAGS, cache=False)
    kernel = numba.njit(**flags)(dense_kernel(p, cb).py_func)
    x = np.random.default_rng(0).standard_normal((10, 40, channels)).astype(np.float32)
    W = np.random.default_rng(1).standard_normal((channels, channels, 3, 3)).astype(np.float32)
    packed = K.pack_conv_weights(W)
    out = K.aligned_empty((8, 38, packed.weights.shape[-1]))
    b = np.zeros(packed.weights.shape[-1], np.float32)
    kernel(x, packed.weights, b, out, 1, 1, 1, 1, 0, np.float32(0), np.float32(0))
    _close(out[..., :channels], conv_ref(x, W, None, (1, 1), (1, 1), 1))
    asm = "\n".join(kernel.inspect_asm().values())
    fma = re.findall(rf"vfmadd\d{{3}}ps\s+[^\n]*%{REGISTER}", asm)
    # The inner loop is p * cb FMAs per input channel, unrolled by LLVM at least once.
    assert len(fma) >= p * cb, f"{len(fma)} vfmadd...ps on {REGISTER} registers in the kernel"


@pytest.mark.skipif(WINOGRAD_MIN_CHANNELS is None, reason="no Winograd kernel for this CPU's vectors (AVX-512 only)")
def test_winograd_kernel_uses_fma_on_vector_registers():
    p, cb = tile_shape(64 // LANES)
    kernel = numba.njit(**dict(NUMBA_FLAGS, cache=False))(winograd_kernel(p, cb).py_func)
    x = np.random.default_rng(0).standard_normal((6, 40, 64)).astype(np.float32)
    W = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)
    packed = K.pack_conv_weights(W)
    out = K.aligned_empty((4, 38, 64))
    pairs = 19
    kernel(x, packed.winograd, np.zeros(64, np.float32), out, 0, np.float32(0), np.float32(0), 0, 0, 0,
           K.aligned_empty((3 * 4 * pairs * 64,)), K.aligned_empty((4 * pairs * 64,)))
    _close(out, conv_ref(x, W, None, (1, 1), (1, 1), 1))
    asm = "\n".join(kernel.inspect_asm().values())
    fma = re.findall(rf"vfmadd\d{{3}}ps\s+[^\n]*%{REGISTER}", asm)
    assert len(fma) >= p * cb, f"{len(fma)} vfmadd...ps on {REGISTER} registers in the kernel"


# -- Winograd F(2,3) --------------------------------------------------------------

needs_winograd = pytest.mark.skipif(WINOGRAD_MIN_CHANNELS is None,
                                    reason="no Winograd kernel for this CPU's vectors (AVX-512 only)")


def _zero_window(x, origin, shape):
    """``x`` read over ``[origin, origin + shape)``, zeros outside."""
    out = np.zeros(tuple(shape) + x.shape[2:], x.dtype)
    ys, xs = [(max(o, 0), min(o + n, full)) for o, n, full in zip(origin, shape, x.shape)]
    if ys[1] > ys[0] and xs[1] > xs[0]:
        out[ys[0] - origin[0] : ys[1] - origin[0], xs[0] - origin[1] : xs[1] - origin[1]] = x[ys[0] : ys[1], xs[0] : xs[1]]
    return out


@needs_winograd
def test_only_wide_3x3_dense_weights_get_winograd_weights():
    rng = np.random.default_rng(2)
    assert K.pack_conv_weights(rng.standard_normal((64, 64, 3, 3))).winograd.shape == (4, 3, 64, 64)
    assert K.pack_conv_weights(rng.standard_normal((96, 128, 3, 3))).winograd.shape == (4, 3, 128, 96)
    assert K.pack_conv_weights(rng.standard_normal((32, 32, 3, 3))).winograd is None  # narrow: direct is faster
    assert K.pack_conv_weights(rng.standard_normal((64, 48, 3, 3))).winograd is None
    assert K.pack_conv_weights(rng.standard_normal((64, 72, 3, 3))).winograd is None  # Cin not whole vectors
    assert K.pack_conv_weights(rng.standard_normal((64, 32, 3, 3)), groups=2).winograd is None
    assert K.pack_conv_weights(rng.standard_normal((64, 64, 5, 5))).winograd is None
    assert K.pack_conv_transpose_weights(rng.standard_normal((64, 64, 3, 3))).winograd is None
    # derived again on unpickling (where the weights may be re-padded), and never for transposed weights
    wide = pickle.loads(pickle.dumps(K.pack_conv_weights(rng.standard_normal((64, 64, 3, 3)))))
    assert wide.winograd is not None and wide.winograd.ctypes.data % 64 == 0
    assert pickle.loads(pickle.dumps(K.pack_conv_transpose_weights(rng.standard_normal((64, 64, 3, 3))))).winograd is None


WINOGRAD_CASES = [
    # (H, W, Cin, Cout, window origin, output shape, activation)
    (9, 30, 64, 64, (-1, -1), (9, 30), "Relu"),  # a padded layer: 2 full tiles of 6 pairs + 3 pairs
    (6, 13, 64, 64, (-1, -1), (6, 13), None),  # odd width: the last pair is cut
    (5, 40, 128, 64, (0, 0), (3, 38), "LeakyRelu"),  # valid, 128 input channels
    (4, 17, 64, 128, (-3, 5), (9, 11), "Clip"),  # rows and columns outside the source
    (3, 8, 64, 80, (-1, -2), (4, 12), "Sigmoid"),  # 80 outputs: 1-vector tiles; scalar activation
    (1, 1, 64, 64, (-1, -1), (1, 1), "Tanh"),  # one pixel
    (7, 9, 64, 64, (10, 20), (2, 3), None),  # entirely outside: the bias
]


@needs_winograd
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}-{c[3]}@{c[4]}->{c[5]}")
@pytest.mark.parametrize("phase", [0, 1])
def test_winograd_conv_matches_einsum(monkeypatch, case, phase):
    h, w, cin, cout, origin, out, act = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    W = (rng.standard_normal((cout, cin, 3, 3)) / 8).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    alpha, beta = {"LeakyRelu": (0.1, 0), "Clip": (-0.5, 0.7)}.get(act, (0, 0))
    calls = []
    monkeypatch.setattr(K, "_winograd", lambda *a, _real=K._winograd: calls.append(a) or _real(*a))
    got = K.conv2d_window([x], [origin], [K.pack_conv_weights(W)], b, out, activation=act, alpha=alpha, beta=beta,
                          column_phase=phase)
    assert len(calls) == 1, "the Winograd kernel did not run"
    window = _zero_window(x, origin, (out[0] + 2, out[1] + 2))
    _close(got, conv_ref(window, W, b, (1, 1), (1, 1), 1, act, alpha, beta))


@needs_winograd
@pytest.mark.parametrize("width", [1, 2, 13, 26])
def test_winograd_pixels_do_not_depend_on_the_window(width):
    """Every window of the output, at either column parity, has the bits of the whole output there."""
    rng = np.random.default_rng(width)
    x = rng.standard_normal((5, width, 64)).astype(np.float32)
    packed = K.pack_conv_weights(rng.standard_normal((64, 64, 3, 3)).astype(np.float32) / 8)
    b = rng.standard_normal(64).astype(np.float32)
    whole = K.conv2d_window([x], [(-1, -1)], [packed], b, (5, width), activation="Relu")
    for x0 in range(width):
        for n in range(1, width - x0 + 1):
            part = K.conv2d_window([x], [(-1, x0 - 1)], [packed], b, (5, n), activation="Relu", column_phase=x0)
            np.testing.assert_array_equal(part, whole[:, x0 : x0 + n], err_msg=f"columns [{x0}, {x0 + n})")


# -- dense and grouped convolutions ------------------------------------------

DENSE_CASES = [
    # (H, W, Cin, Cout, KH, KW, stride, dilation, groups)
    (20, 23, 32, 32, 3, 3, (1, 1), (1, 1), 1),  # 1 block of 3 px x 4 vectors, remainder pixels
    (9, 11, 16, 16, 3, 3, (1, 1), (1, 1), 1),  # 6 px x 2 vectors
    (7, 30, 5, 24, 3, 3, (1, 1), (1, 1), 1),  # 4 px x 3 vectors
    (6, 29, 7, 8, 3, 3, (1, 1), (1, 1), 1),  # 12 px x 1 vector
    (5, 9, 3, 40, 3, 3, (1, 1), (1, 1), 1),  # 5 vectors -> 1-vector blocks
    (13, 14, 5, 3, 3, 3, (2, 2), (2, 2), 1),  # Cout padded to 8, stride and dilation
    (9, 10, 6, 1, 3, 3, (1, 2), (2, 1), 1),  # one output channel, mixed stride/dilation
    (3, 3, 4, 9, 3, 3, (1, 1), (1, 1), 1),  # a 1-pixel output
    (7, 7, 6, 10, 7, 7, (1, 1), (1, 1), 1),  # 7x7 kernel, 1-pixel output
    (11, 12, 32, 64, 3, 3, (2, 2), (1, 1), 1),  # stride 2
    (8, 9, 64, 128, 1, 1, (1, 1), (1, 1), 1),  # 1x1
    (8, 9, 16, 2, 1, 1, (1, 1), (1, 1), 1),  # 1x1 to few channels: a network's head (dot-product kernel)
    (5, 7, 3, 1, 1, 1, (1, 1), (1, 1), 1),  # ... to one channel
    (8, 7, 12, 20, 3, 3, (1, 1), (1, 1), 4),  # groups, Cout/g = 5 padded to 8
    (9, 9, 16, 32, 3, 2, (2, 1), (1, 3), 2),  # groups, non-square kernel
    (10, 10, 6, 6, 3, 3, (1, 1), (1, 1), 3),  # groups with Cin/g = Cout/g = 2
    (4, 40, 3, 17, 1, 5, (1, 3), (1, 2), 1),  # 1x5 kernel, odd Cout
]


@pytest.mark.parametrize("case", DENSE_CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"s{c[6]}d{c[7]}g{c[8]}")
def test_dense_conv_matches_einsum(case):
    h, w, cin, cout, kh, kw, stride, dilation, groups = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    W = rng.standard_normal((cout, cin // groups, kh, kw))
    b = rng.standard_normal(cout).astype(np.float32)
    got = K.conv2d(x, K.pack_conv_weights(W, groups), b, stride=stride, dilation=dilation)
    _close(got, conv_ref(x, W.astype(np.float32), b, stride, dilation, groups))


ACTIVATIONS = [(None, 0, 0), ("Relu", 0, 0), ("LeakyRelu", 0.1, 0), ("Clip", -0.5, 0.7), ("Sigmoid", 0, 0),
               ("Tanh", 0, 0), ("HardSigmoid", 0.2, 0.5), ("HardSwish", 0, 0)]


@pytest.mark.parametrize("act,alpha,beta", ACTIVATIONS)
@pytest.mark.parametrize("cout,groups,k", [(16, 1, 3), (12, 12, 3), (3, 1, 1)], ids=["dense", "depthwise", "head"])
def test_fused_bias_and_activation(act, alpha, beta, cout, groups, k):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 13, 12 if groups > 1 else 8)).astype(np.float32)
    W = rng.standard_normal((cout, x.shape[2] // groups, k, k)).astype(np.float32) * 0.3
    b = rng.standard_normal(cout).astype(np.float32)
    got = K.conv2d(x, K.pack_conv_weights(W, groups), b, activation=act, alpha=alpha, beta=beta)
    _close(got, conv_ref(x, W, b, (1, 1), (1, 1), groups, act, alpha, beta))


# -- depthwise ---------------------------------------------------------------

DEPTHWISE_CASES = [
    # (H, W, C, K, stride, dilation)
    (20, 21, 64, 3, (1, 1), (1, 1)),  # 3 px x 4 vectors, 2 blocks
    (9, 17, 16, 3, (2, 2), (1, 1)),
    (8, 15, 24, 5, (1, 1), (1, 1)),
    (7, 9, 10, 3, (1, 2), (2, 1)),  # C padded to 16
    (3, 3, 3, 3, (1, 1), (1, 1)),  # 1-pixel output, C padded to 8
    (6, 30, 8, 3, (1, 1), (1, 1)),  # 12 px x 1 vector
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"s{c[4]}d{c[5]}")
def test_depthwise_conv_matches_einsum(case):
    h, w, c, k, stride, dilation = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((h, w, c)).astype(np.float32)
    W = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    packed = K.pack_conv_weights(W, c)
    assert packed.depthwise
    got = K.conv2d(x, packed, b, stride=stride, dilation=dilation)
    _close(got, conv_ref(x, W, b, stride, dilation, c))


def test_depthwise_with_channel_multiplier_uses_grouped_path():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 9, 6)).astype(np.float32)
    W = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)  # 2 filters per channel
    packed = K.pack_conv_weights(W, 6)
    assert not packed.depthwise
    _close(K.conv2d(x, packed, None), conv_ref(x, W, None, (1, 1), (1, 1), 6))


# -- transposed ----------------------------------------------------------------

TRANSPOSE_CASES = [
    # (H, W, Cin, Cout, K, stride, dilation, groups)
    (9, 11, 64, 32, 2, (2, 2), (1, 1), 1),  # the U-Net up-sampling: disjoint taps
    (5, 7, 16, 16, 3, (2, 2), (1, 1), 1),  # overlapping taps
    (4, 6, 8, 3, 3, (1, 1), (1, 1), 1),  # stride 1, Cout padded
    (5, 5, 6, 10, 2, (3, 2), (2, 1), 2),  # groups, dilation, taps with gaps
    (1, 1, 4, 24, 4, (2, 2), (1, 1), 1),  # one input pixel
    (3, 20, 7, 40, 2, (2, 2), (1, 1), 1),  # 1-vector blocks, remainder pixels
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"s{c[5]}d{c[6]}g{c[7]}")
def test_conv_transpose_matches_einsum(case):
    h, w, cin, cout, k, stride, dilation, groups = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    W = rng.standard_normal((cin, cout // groups, k, k)).astype(np.float32)
    got = K.conv_transpose2d(x, K.pack_conv_transpose_weights(W, groups), stride=stride, dilation=dilation)
    _close(got, conv_transpose_ref(x, W, stride, dilation, groups))


# -- packing and bad input ------------------------------------------------------

@pytest.mark.parametrize("depthwise", [False, True])
def test_weights_packed_for_another_vector_width_are_repadded_on_unpickling(depthwise):
    # A client packing for 8 lanes sends weights to a worker with 16 (or back):
    # 24 output channels padded to 24 columns, and to 32 with junk in the padding.
    rng = np.random.default_rng(0)
    cin = 24 if depthwise else 16
    W = rng.standard_normal((24, 1 if depthwise else cin, 3, 3))
    ours = K.pack_conv_weights(W, groups=24 if depthwise else 1)
    x = rng.standard_normal((7, 8, cin)).astype(np.float32)
    want = conv_ref(x, W.astype(np.float32), None, (1, 1), (1, 1), 24 if depthwise else 1)
    for width in (24, 32):
        other = np.full(ours.weights.shape[:-1] + (width,), np.nan, np.float32)
        other[..., :24] = ours.weights[..., :24]
        sent = type(ours)(other, ours.groups, ours.in_channels, ours.out_channels, ours.kernel, ours.depthwise)
        got = pickle.loads(pickle.dumps(sent))
        assert got.weights.shape[-1] % (16 if HAS_AVX512F else 8) == 0
        assert got.weights.ctypes.data % 64 == 0
        _close(K.conv2d(x, got), want)


def test_packed_weights_are_aligned_and_stay_aligned_through_pickle():
    W = np.random.default_rng(0).standard_normal((24, 16, 3, 3))
    packed = K.pack_conv_weights(W)
    assert packed.weights.ctypes.data % 64 == 0
    assert packed.weights.shape == (1, 3, 3, 16, 32 if HAS_AVX512F else 24)
    again = pickle.loads(pickle.dumps(packed))
    assert again.weights.ctypes.data % 64 == 0
    np.testing.assert_array_equal(again.weights, packed.weights)
    x = np.random.default_rng(1).standard_normal((6, 6, 16)).astype(np.float32)
    np.testing.assert_array_equal(K.conv2d(x, again), K.conv2d(x, packed))


def test_output_is_independent_of_input_alignment_and_layout():
    rng = np.random.default_rng(5)
    big = rng.standard_normal((10, 12, 17)).astype(np.float32)
    x = big[:, :, 1:]  # not contiguous, not aligned
    W = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    _close(K.conv2d(x, K.pack_conv_weights(W)), conv_ref(x, W, None, (1, 1), (1, 1), 1))


def test_bad_input_raises_typed_errors():
    packed = K.pack_conv_weights(np.ones((8, 4, 3, 3)))
    with pytest.raises(ChannelError, match="4 channels"):
        K.conv2d(np.ones((5, 5, 3), np.float32), packed)
    with pytest.raises(ShapeError, match="dilated kernel"):
        K.conv2d(np.ones((2, 5, 4), np.float32), packed)
    with pytest.raises(ShapeError, match="3-D"):
        K.conv2d(np.ones((5, 5), np.float32), packed)
    with pytest.raises(ShapeError, match="bias of 8"):
        K.conv2d(np.ones((5, 5, 4), np.float32), packed, np.ones(7))
    with pytest.raises(ValueError, match="stride"):
        K.conv2d(np.ones((5, 5, 4), np.float32), packed, stride=(0, 1))
    with pytest.raises(ModelError, match="divisible by groups"):
        K.pack_conv_weights(np.ones((6, 2, 3, 3)), groups=4)
    with pytest.raises(TypeError, match="pack_conv_weights"):
        K.conv2d(np.ones((5, 5, 4), np.float32), np.ones((1, 3, 3, 4, 8), np.float32))


def test_every_tile_shape_covers_its_channels():
    registers = 32 if HAS_AVX512F else 16
    for vectors in range(1, 33):
        p, cb = tile_shape(vectors)
        # accumulators, the weight vectors or pixels held, and one broadcast fit the registers
        assert vectors % cb == 0 and p * cb + min(p, cb) + 1 <= registers
    if HAS_AVX512F:
        assert tile_shape(4, taps_per_row=3 * 64) == (4, 4)  # 3x3 64->64: 48 KiB weight slices stream from L2
        assert tile_shape(4, taps_per_row=3 * 128) == (8, 2)  # ... 96 KiB do not
    else:
        assert tile_shape(8, taps_per_row=3 * 64) == (6, 2)  # 3x3 64->64: 12 KiB weight slices, not 24
    # one compiled kernel per tile shape, shared by every layer using it
    assert dense_kernel(*tile_shape(4)) is dense_kernel(*tile_shape(4))
    assert depthwise_kernel(6, 2) is depthwise_kernel(6, 2)
    assert transpose_kernel(6, 2) is transpose_kernel(6, 2)
