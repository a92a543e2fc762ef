"""Hypothesis strategies: random valid networks, image sizes and chunkings.

:func:`networks` draws a :class:`Case`: a :class:`pipeline.model.Model`
together with an input size at which it is valid.  The image size is drawn
first and the network is grown node by node while this module tracks the size
of every tensor with the ONNX output-size formulas, so every drawn op fits
and every skip connection (residual Add/Sub/Mul, Concat) joins tensors of the
same size -- e.g. down-sampling twice then up-sampling back on a size that is
a multiple of 4.  Expected values never come from here: the tests compare
against ``tests/naive.py``.  ``model.geometry`` is read only to choose
chunkings (some smaller than the halo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from pipeline.model import Model, Node

from naive import same_pads

__all__ = ["Case", "networks", "chunkings", "storage_chunks", "ACTIVATIONS", "COORDINATE_MODES", "NEAREST_MODES"]

ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softmax", "Identity")
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MAX_SIDE = 48  # no tensor grows beyond this, so the naive reference stays fast


@dataclass(frozen=True)
class Case:
    """A network and an input size it is valid for."""

    model: Model
    height: int
    width: int

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        lines = [f"Case({self.height} x {self.width}, input_channels={self.model.input_channels})"]
        for n in self.model.nodes:
            shapes = {k: v.shape for k, v in n.weights.items()}
            lines.append(f"  {n.name} = {n.op}{n.inputs} {dict(n.attrs)} {shapes}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


@dataclass
class _Tensor:
    name: str
    channels: int
    h: int
    w: int


def _weights(draw, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """Random normal weights scaled by ``1/sqrt(fan_in)`` (seeded by hypothesis, so reproducible)."""
    seed = draw(st.integers(0, 2**32 - 1))
    return (np.random.default_rng(seed).standard_normal(shape) / math.sqrt(max(fan_in, 1))).astype(np.float32)


def _window_out(n: int, k: int, s: int, d: int, pad_total: int) -> int:
    return (n + pad_total - (k - 1) * d - 1) // s + 1


def _draw_pads(draw, kernel, dilation, *, limit=None):
    """``"same"``, ``"same_lower"`` or explicit pads up to the kernel's extent (or ``limit``)."""
    kind = draw(st.sampled_from(["explicit", "same", "same_lower"]))
    if kind != "explicit":
        return kind
    ext = [(k - 1) * d for k, d in zip(kernel, dilation)]
    if limit is not None:
        ext = [min(e, m) for e, m in zip(ext, limit)]
    t, b = (draw(st.integers(0, ext[0])) for _ in range(2))
    l, r = (draw(st.integers(0, ext[1])) for _ in range(2))
    return (t, l, b, r)


def _out_size(cur: _Tensor, kernel, stride, dilation, pads) -> tuple[int, int]:
    if isinstance(pads, str):
        return (-(-cur.h // stride[0]), -(-cur.w // stride[1]))
    return (
        _window_out(cur.h, kernel[0], stride[0], dilation[0], pads[0] + pads[2]),
        _window_out(cur.w, kernel[1], stride[1], dilation[1], pads[1] + pads[3]),
    )


def _windows_touch_image(cur: _Tensor, kernel, stride, dilation, pads, out) -> bool:
    if isinstance(pads, str):
        pads = same_pads((cur.h, cur.w), kernel, stride, dilation, pads)
    for n, k, s, d, pb, no in zip((cur.h, cur.w), kernel, stride, dilation, pads[:2], out):
        for o in range(no):
            if not any(0 <= o * s - pb + j * d < n for j in range(k)):
                return False
    return True


# --------------------------------------------------------------------------- one layer each
def _conv(draw, name, cur):
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 2)),) * 2
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = _draw_pads(draw, k, dil)
    oh, ow = _out_size(cur, k, stride, dil, pads)
    if oh < 1 or ow < 1:
        return None
    kind = draw(st.sampled_from(["dense", "depthwise", "grouped"]))
    if kind == "depthwise":
        groups, cout = cur.channels, cur.channels * draw(st.integers(1, max(1, 6 // cur.channels)))
    elif kind == "grouped":
        groups = draw(st.sampled_from([g for g in range(1, cur.channels + 1) if cur.channels % g == 0]))
        cout = groups * draw(st.integers(1, max(1, 6 // groups)))
    else:
        groups, cout = 1, draw(st.integers(1, 6))
    fan_in = cur.channels // groups * k[0] * k[1]
    weights = {"W": _weights(draw, (cout, cur.channels // groups, *k), fan_in)}
    if draw(st.booleans()):
        weights["B"] = _weights(draw, (cout,), 4)
    attrs = {"stride": stride, "dilation": dil, "groups": groups, "pads": pads}
    return Node(name, "Conv", (cur.name,), attrs, weights), _Tensor(name, cout, oh, ow)


def _conv_transpose(draw, name, cur):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 2)),) * 2
    dil = (draw(st.integers(1, 2)),) * 2
    pads = _draw_pads(draw, k, dil)
    if isinstance(pads, str):
        pads = (0, 0, 0, 0)
    out_pad = (draw(st.integers(0, stride[0] - 1)), draw(st.integers(0, stride[1] - 1)))
    oh = (cur.h - 1) * stride[0] + (k[0] - 1) * dil[0] + 1 + out_pad[0] - pads[0] - pads[2]
    ow = (cur.w - 1) * stride[1] + (k[1] - 1) * dil[1] + 1 + out_pad[1] - pads[1] - pads[3]
    if not (1 <= oh <= MAX_SIDE and 1 <= ow <= MAX_SIDE):
        return None
    groups = draw(st.sampled_from([g for g in range(1, cur.channels + 1) if cur.channels % g == 0]))
    cout_g = draw(st.integers(1, max(1, 6 // groups)))
    weights = {"W": _weights(draw, (cur.channels, cout_g, *k), cur.channels // groups * k[0] * k[1])}
    if draw(st.booleans()):
        weights["B"] = _weights(draw, (cout_g * groups,), 4)
    attrs = {"stride": stride, "dilation": dil, "groups": groups, "pads": pads, "output_padding": out_pad}
    return Node(name, "ConvTranspose", (cur.name,), attrs, weights), _Tensor(name, cout_g * groups, oh, ow)


def _pool(draw, name, cur):
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)),) * 2
    dil = (draw(st.integers(1, 2)),) * 2 if op == "MaxPool" else (1, 1)
    pads = _draw_pads(draw, k, (1, 1), limit=(k[0] - 1, k[1] - 1))
    oh, ow = _out_size(cur, k, stride, dil, pads)
    if oh < 1 or ow < 1:
        return None
    if op == "MaxPool" and not _windows_touch_image(cur, k, stride, dil, pads, (oh, ow)):
        return None  # a window made only of padding would give -inf
    attrs = {"kernel": k, "stride": stride, "pads": pads}
    if op == "MaxPool":
        attrs["dilation"] = dil
    else:
        attrs["count_include_pad"] = draw(st.booleans())
    return Node(name, op, (cur.name,), attrs), _Tensor(name, cur.channels, oh, ow)


def _resize(draw, name, cur):
    if 2 * max(cur.h, cur.w) > MAX_SIDE:
        return None
    attrs = {
        "scales": (2.0, 2.0),
        "mode": draw(st.sampled_from(["nearest", "linear"])),
        "coordinate_transformation_mode": draw(st.sampled_from(COORDINATE_MODES)),
        "nearest_mode": draw(st.sampled_from(NEAREST_MODES)),
    }
    return Node(name, "Resize", (cur.name,), attrs), _Tensor(name, cur.channels, 2 * cur.h, 2 * cur.w)


def _pad(draw, name, cur):
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    value = draw(st.sampled_from([0.0, 0.0, -1.0, 0.5]))
    oh, ow = cur.h + pads[0] + pads[2], cur.w + pads[1] + pads[3]
    if max(oh, ow) > MAX_SIDE:
        return None
    return Node(name, "Pad", (cur.name,), {"pads": pads, "value": value}), _Tensor(name, cur.channels, oh, ow)


def _activation(draw, name, cur):
    op = draw(st.sampled_from(ACTIVATIONS))
    attrs = {}
    if op == "LeakyRelu":
        attrs["alpha"] = draw(st.sampled_from([0.01, 0.2]))
    elif op == "Clip":
        attrs = draw(st.sampled_from([{"min": 0.0, "max": 6.0}, {"min": -0.5}, {"max": 0.25}]))
    elif op == "HardSigmoid":
        attrs = draw(st.sampled_from([{}, {"alpha": 1 / 6, "beta": 0.5}]))
    return Node(name, op, (cur.name,), attrs), _Tensor(name, cur.channels, cur.h, cur.w)


def _batch_norm(draw, name, cur):
    c = cur.channels
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = {
        "scale": rng.uniform(0.5, 1.5, c),
        "bias": rng.uniform(-0.5, 0.5, c),
        "mean": rng.uniform(-0.5, 0.5, c),
        "var": rng.uniform(0.2, 2.0, c),
    }
    return Node(name, "BatchNorm", (cur.name,), {}, weights), _Tensor(name, c, cur.h, cur.w)


def _dense(draw, name, cur):
    cout = draw(st.integers(1, 6))
    weights = {"W": _weights(draw, (cout, cur.channels), cur.channels)}
    if draw(st.booleans()):
        weights["B"] = _weights(draw, (cout,), 4)
    return Node(name, "Dense", (cur.name,), {}, weights), _Tensor(name, cout, cur.h, cur.w)


def _constant_op(draw, name, cur):
    op = draw(st.sampled_from(["Add", "Sub", "Mul", "Div"]))
    size = draw(st.sampled_from([1, cur.channels]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # divisors stay away from zero; x is never a divisor (no ``reverse`` Div) so nothing blows up
    C = rng.choice([-1.0, 1.0], size) * rng.uniform(0.5, 2.0, size) if op == "Div" else rng.uniform(-1, 1, size)
    reverse = False if op == "Div" else draw(st.booleans())
    node = Node(name, op, (cur.name,), {"reverse": reverse}, {"C": C})
    return node, _Tensor(name, cur.channels, cur.h, cur.w)


def _skip(draw, name, cur, earlier):
    same = [t for t in earlier if (t.h, t.w) == (cur.h, cur.w) and t.name != cur.name]
    if not same:
        return None
    other = draw(st.sampled_from(same))
    op = draw(st.sampled_from(["Concat", "Add", "Sub", "Mul"]))
    if op == "Concat":
        return Node(name, op, (cur.name, other.name)), _Tensor(name, cur.channels + other.channels, cur.h, cur.w)
    if cur.channels != other.channels and 1 not in (cur.channels, other.channels):
        return None
    ins = (cur.name, other.name) if draw(st.booleans()) else (other.name, cur.name)
    return Node(name, op, ins), _Tensor(name, max(cur.channels, other.channels), cur.h, cur.w)


_LAYERS = {
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "pool": _pool,
    "resize": _resize,
    "pad": _pad,
    "activation": _activation,
    "batch_norm": _batch_norm,
    "dense": _dense,
    "constant": _constant_op,
}


@st.composite
def networks(draw, *, input_channels: int | None = None, max_depth: int = 6, max_side: int = 24) -> Case:
    """A random valid local network and an input size it accepts.

    Parameters
    ----------
    input_channels : int, optional
        Fixed number of input channels; drawn from 1-4 when None.
    max_depth : int
        Up to this many layers (at least 1).
    max_side : int
        Largest input height/width drawn.  Sizes are often multiples of 4 so
        that down- then up-sampling paths meet again in skip connections.
    """
    cin = input_channels if input_channels is not None else draw(st.integers(1, 4))
    if draw(st.booleans()):
        h, w = (4 * draw(st.integers(1, max(1, max_side // 4))) for _ in range(2))
    else:
        h, w = (draw(st.integers(1, max_side)) for _ in range(2))
    cur = _Tensor("input", cin, h, w)
    tensors = [cur]
    nodes: list[Node] = []
    depth = draw(st.integers(1, max_depth))
    attempts = 0
    while len(nodes) < depth and (attempts < 8 * depth or not nodes):
        attempts += 1
        name = f"n{len(nodes)}"
        kind = draw(st.sampled_from(sorted(_LAYERS) + ["skip"] * 2))
        made = _skip(draw, name, cur, tensors) if kind == "skip" else _LAYERS[kind](draw, name, cur)
        if made is None:
            continue
        node, cur = made
        nodes.append(node)
        tensors.append(cur)
    return Case(Model(nodes, input_channels=cin, name="random"), h, w)


@st.composite
def chunkings(draw, case: Case):
    """Compute block sizes for ``predict(chunks=...)``: an int or a ``(y, x)`` pair.

    Includes blocks smaller than the halo, ragged last blocks and one block
    covering the whole image.
    """
    halo = case.model.geometry.halo
    depth_y, depth_x = max(halo[0], halo[2]), max(halo[1], halo[3])

    def side(n: int, depth: int):
        options = [st.integers(1, max(1, n)), st.just(max(n, 1))]
        if depth > 1:
            options.append(st.integers(1, depth - 1))  # smaller than the halo
        return st.one_of(options)

    if draw(st.booleans()):
        return draw(side(min(case.height, case.width), min(depth_y, depth_x)))
    return (draw(side(case.height, depth_y)), draw(side(case.width, depth_x)))


def storage_chunks(height: int, width: int):
    """Random storage chunk sizes ``(cy, cx)`` of an input Dask array."""
    return st.tuples(st.integers(1, height), st.integers(1, width))
