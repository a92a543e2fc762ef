"""Geometry of a network: which input pixels each output pixel needs.

This pure module is the one place that knows how far every op reaches.
:func:`input_ranges` maps an output range of a node back to the input ranges
it reads (in whole-image coordinates of each tensor); the block executor uses
it to decide what to compute, and :func:`compute_geometry` uses the very same
function on a virtual image to derive the halo, so the two cannot disagree.

Coordinates are half-open ranges ``(lo, hi)`` along one axis of one tensor,
always clipped to that tensor's whole-image extent ``[0, N)``: a block never
computes values outside the image, and positions outside are the layer's own
padding (zeros, ``-inf`` for max pooling) supplied by the executor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ShapeError
from ._shapes import infer_shapes, resolved_pads

if TYPE_CHECKING:  # pragma: no cover
    from ._graph import Model, Node

__all__ = ["Geometry", "compute_geometry", "tensor_scales", "input_ranges", "required_ranges", "resize_coordinates"]

Range = tuple[int, int]


@dataclass(frozen=True)
class Geometry:
    """What tiling needs to know about a network.

    Attributes
    ----------
    halo : (top, left, bottom, right) ints
        Input pixels a block needs beyond its own extent on each side so that
        every output pixel of the block equals the whole-image result.
    stride : (sy, sx) ints
        Block origins (and sizes, except the last) must be multiples of it so
        that every layer's grid lines up with the whole-image grid.
    scale : (Fraction, Fraction)
        Output size over input size (1 for dense prediction, 1/4 for a
        network that downsamples twice).
    local : bool
        False when some output depends on the whole image (global pooling).
    """

    halo: tuple[int, int, int, int]
    stride: tuple[int, int]
    scale: tuple[Fraction, Fraction]
    local: bool

    @property
    def depth(self) -> tuple[int, int]:
        """Symmetric overlap depth per spatial axis: ``max(begin, end)``."""
        return (max(self.halo[0], self.halo[2]), max(self.halo[1], self.halo[3]))


# --------------------------------------------------------------------------- resize
def resize_coordinates(
    lo: int, hi: int, n_in: int, n_out: int, scale: float, mode: str, ctm: str, nearest_mode: str
):
    """Source coordinates of output pixels ``lo..hi-1`` of an ONNX Resize along one axis.

    Returns ``(i0, i1, w)`` int64/int64/float32 arrays: the output at ``o`` is
    ``(1 - w) * x[i0] + w * x[i1]`` (for nearest, ``i1 == i0`` and ``w == 0``).
    Indices are whole-image indices into the input, clamped to ``[0, n_in)``.
    """
    o = np.arange(lo, hi, dtype=np.float64)
    if ctm == "half_pixel":
        x = (o + 0.5) / scale - 0.5
    elif ctm == "pytorch_half_pixel":
        x = (o + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(o)
    elif ctm == "align_corners":
        x = o * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros_like(o)
    else:  # asymmetric
        x = o / scale
    if mode == "nearest":
        if nearest_mode == "round_prefer_floor":
            i = np.ceil(x - 0.5)
        elif nearest_mode == "round_prefer_ceil":
            i = np.floor(x + 0.5)
        elif nearest_mode == "floor":
            i = np.floor(x)
        else:
            i = np.ceil(x)
        i = np.clip(i, 0, n_in - 1).astype(np.int64)
        return i, i, np.zeros(i.shape, np.float32)
    x = np.clip(x, 0, n_in - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)


# --------------------------------------------------------------------------- ranges
def _clip(lo: int, hi: int, n: int) -> Range:
    lo, hi = max(lo, 0), min(hi, n)
    return (lo, hi) if hi > lo else (0, 0)


def _window_range(o: Range, k: int, s: int, d: int, pad_begin: int, n_in: int) -> Range:
    """Input positions read by outputs ``o`` of a conv/pool (clipped to the image)."""
    if o[1] <= o[0]:
        return (0, 0)
    return _clip(o[0] * s - pad_begin, (o[1] - 1) * s - pad_begin + (k - 1) * d + 1, n_in)


def _transpose_range(o: Range, k: int, s: int, d: int, pad_begin: int, n_in: int) -> Range:
    """Inputs ``i`` of a transposed conv with ``i*s - pad + j*d`` in ``o`` for some tap ``j``."""
    if o[1] <= o[0]:
        return (0, 0)
    lo = -(-(o[0] + pad_begin - (k - 1) * d) // s)  # ceil division
    hi = (o[1] - 1 + pad_begin) // s + 1
    return _clip(lo, hi, n_in)


def input_ranges(
    node: "Node", out: tuple[Range, Range], shapes: dict[str, tuple[int, int, int]]
) -> list[tuple[Range, Range]]:
    """Ranges of each input of ``node`` read to compute output ranges ``out = (ry, rx)``.

    ``shapes`` are the whole-image shapes from :func:`infer_shapes`.
    """
    op = node.op
    in_shapes = [shapes[s] for s in node.inputs]
    _, H, W = in_shapes[0]
    if op in ("Conv", "MaxPool", "AveragePool"):
        k = node.weights["W"].shape[2:] if op == "Conv" else node.attrs["kernel"]
        s, d = node.attrs["stride"], node.attrs.get("dilation", (1, 1))
        p = resolved_pads(node, H, W)
        return [(_window_range(out[0], k[0], s[0], d[0], p[0], H), _window_range(out[1], k[1], s[1], d[1], p[1], W))]
    if op == "ConvTranspose":
        k = node.weights["W"].shape[2:]
        s, d, p = node.attrs["stride"], node.attrs["dilation"], node.attrs["pads"]
        return [
            (_transpose_range(out[0], k[0], s[0], d[0], p[0], H), _transpose_range(out[1], k[1], s[1], d[1], p[1], W))
        ]
    if op == "Resize":
        _, oh, ow = shapes[node.name]
        result = []
        for r, n_in, n_out, sc in zip(out, (H, W), (oh, ow), node.attrs["scales"]):
            if r[1] <= r[0]:
                result.append((0, 0))
                continue
            i0, i1, _ = resize_coordinates(
                r[0], r[1], n_in, n_out, sc, node.attrs["mode"],
                node.attrs["coordinate_transformation_mode"], node.attrs["nearest_mode"],
            )
            result.append((int(i0.min()), int(i1.max()) + 1))
        return [tuple(result)]  # type: ignore[list-item]
    if op == "Pad":
        p = node.attrs["pads"]
        return [(_clip(out[0][0] - p[0], out[0][1] - p[0], H), _clip(out[1][0] - p[1], out[1][1] - p[1], W))]
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return [((0, H), (0, W))]
    # element-wise, activations, BatchNorm, Dense, Softmax, Concat, Identity:
    # the same positions, except broadcast inputs of size 1 read their one pixel.
    result = []
    for _, h, w in in_shapes:
        result.append((out[0] if h > 1 or shapes[node.name][1] == 1 else (0, 1),
                       out[1] if w > 1 or shapes[node.name][2] == 1 else (0, 1)))
    return result


def _hull(a: tuple[Range, Range] | None, b: tuple[Range, Range]) -> tuple[Range, Range]:
    if a is None:
        return b
    out = []
    for ra, rb in zip(a, b):
        if ra[1] <= ra[0]:
            out.append(rb)
        elif rb[1] <= rb[0]:
            out.append(ra)
        else:
            out.append((min(ra[0], rb[0]), max(ra[1], rb[1])))
    return tuple(out)  # type: ignore[return-value]


def required_ranges(
    model: "Model", out: tuple[Range, Range], shapes: dict[str, tuple[int, int, int]]
) -> dict[str, tuple[Range, Range]]:
    """Range of every tensor needed to compute ``out`` of the model's output.

    A tensor read by several consumers gets the hull of their needs.
    """
    need: dict[str, tuple[Range, Range]] = {model.output: out}
    for node in reversed(model.nodes):
        if node.name not in need:
            continue
        for src, r in zip(node.inputs, input_ranges(node, need[node.name], shapes)):
            need[src] = _hull(need.get(src), r)
    return need


# --------------------------------------------------------------------------- geometry
def tensor_scales(model: "Model") -> dict[str, tuple[Fraction, Fraction] | None]:
    """Resolution of every tensor relative to the input (None: global, 1x1)."""
    one = (Fraction(1), Fraction(1))
    scale: dict[str, tuple[Fraction, Fraction] | None] = {model.input_name: one}
    for node in model.nodes:
        ins = [scale[s] for s in node.inputs]
        spatial = [s for s in ins if s is not None]
        base = spatial[0] if spatial else None
        op = node.op
        if op in ("GlobalAveragePool", "GlobalMaxPool") or base is None:
            scale[node.name] = None
        elif op in ("Conv", "MaxPool", "AveragePool"):
            st = node.attrs["stride"]
            scale[node.name] = (base[0] / st[0], base[1] / st[1])
        elif op == "ConvTranspose":
            st = node.attrs["stride"]
            scale[node.name] = (base[0] * st[0], base[1] * st[1])
        elif op == "Resize":
            sy, sx = node.attrs["scales"]
            scale[node.name] = (
                base[0] * Fraction(sy).limit_denominator(1000),
                base[1] * Fraction(sx).limit_denominator(1000),
            )
        else:
            scale[node.name] = base
    return scale


def _lcm_denominators(values) -> int:
    out = 1
    for v in values:
        out = out * v.denominator // math.gcd(out, v.denominator)
    return out


def _same_pad_periods(model: "Model") -> tuple[int, int]:
    """Per axis, a period of the image size after which every layer's ``"same"`` pads repeat.

    ``"same"`` padding of a strided layer depends on its input size modulo its
    stride, so with such layers the halo is probed at every residue of the
    product of the strides; otherwise one size suffices.
    """
    period = [1, 1]
    strided_same = False
    for node in model.nodes:
        if node.op in ("Conv", "MaxPool", "AveragePool"):
            st = node.attrs["stride"]
            period = [p * s for p, s in zip(period, st)]
            strided_same |= isinstance(node.attrs["pads"], str) and tuple(st) != (1, 1)
    return (period[0], period[1]) if strided_same else (1, 1)


def compute_geometry(model: "Model") -> Geometry:
    """Halo, stride, output scale and locality of ``model``.

    The stride is the least common multiple of the denominators of every
    tensor's resolution, so that block origins that are multiples of it fall
    on every layer's pixel grid.  The halo is measured by propagating the
    needs of blocks placed at several aligned origins deep inside a virtual
    image through :func:`required_ranges`, the same code the executor runs;
    resize modes whose mapping drifts with position (``align_corners``) are
    covered by taking the largest need over those origins plus one pixel.
    """
    scales = tensor_scales(model)
    local = model.is_local and scales[model.output] is not None
    spatial = [s for s in scales.values() if s is not None]
    stride = (_lcm_denominators(s[0] for s in spatial), _lcm_denominators(s[1] for s in spatial))
    out_scale = scales[model.output] or (Fraction(0), Fraction(0))
    if not local:
        return Geometry((0, 0, 0, 0), stride, out_scale, False)

    # a virtual image large enough that the probes never reach its edge
    unit = [st * max(1, (sc.denominator if sc else 1)) for st, sc in zip(stride, out_scale)]
    base = [u * max(1, 4096 // u) * 64 for u in unit]
    halo = [0, 0, 0, 0]
    drift = any(n.op == "Resize" and n.attrs["coordinate_transformation_mode"] == "align_corners" for n in model.nodes)
    period = _same_pad_periods(model)
    for ry in range(period[0]):
        for rx in range(period[1]):
            big = (base[0] + ry, base[1] + rx)
            try:
                shapes = infer_shapes(model, *big)
            except ShapeError:  # sizes the network cannot take (skip connections disagree)
                continue
            for frac in (Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)):
                for size_units in (1, 3):
                    origin = [int(b * frac) // u * u for b, u in zip(big, unit)]
                    size = [u * size_units for u in unit]
                    out = tuple((int(o * sc), int((o + n) * sc)) for o, n, sc in zip(origin, size, out_scale))
                    need = required_ranges(model, out, shapes)[model.input_name]
                    for ax in (0, 1):
                        halo[ax] = max(halo[ax], origin[ax] - need[ax][0])
                        halo[ax + 2] = max(halo[ax + 2], need[ax][1] - (origin[ax] + size[ax]))
    halo = [max(h, 0) + (1 if drift else 0) for h in halo]
    return Geometry(tuple(halo), stride, out_scale, True)  # type: ignore[arg-type]
