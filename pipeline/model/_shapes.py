"""Shape inference: channels of every tensor, and spatial sizes for an image size.

Channel inference runs once when a :class:`~pipeline.model.Model` is built and
checks every weight shape against the graph.  Spatial inference gives the
whole-image size of every tensor for a given input ``height x width``; the
block executor and the geometry use it to know where the image edge lies at
each layer.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ModelError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from ._graph import Model, Node

__all__ = ["infer_channels", "infer_shapes", "resolved_pads", "conv_out_size"]


def _weight_error(node: "Node", key: str, expected: str) -> ModelError:
    got = tuple(node.weights[key].shape)
    return ModelError(f"Node {node.name!r} ({node.op}): weight {key!r} should have shape {expected}. Got {got} instead.")


def _check_vector(node: "Node", key: str, length: int) -> None:
    if key in node.weights and node.weights[key].shape != (length,):
        raise _weight_error(node, key, f"({length},)")


def _node_channels(node: "Node", cin: list[int]) -> int:
    op, w = node.op, node.weights
    if op == "Conv":
        W = w["W"]
        g = node.attrs["groups"]
        if W.ndim != 4:
            raise _weight_error(node, "W", "(Cout, Cin/groups, KH, KW)")
        cout = W.shape[0]
        if cin[0] % g or cout % g or W.shape[1] * g != cin[0]:
            raise _weight_error(node, "W", f"(Cout, {cin[0]}/{g}, KH, KW) with Cout divisible by {g}")
        _check_vector(node, "B", cout)
        return cout
    if op == "ConvTranspose":
        W = w["W"]
        g = node.attrs["groups"]
        if W.ndim != 4 or W.shape[0] != cin[0] or cin[0] % g:
            raise _weight_error(node, "W", f"({cin[0]}, Cout/{g}, KH, KW)")
        cout = W.shape[1] * g
        _check_vector(node, "B", cout)
        return cout
    if op == "Dense":
        W = w["W"]
        if W.ndim != 2 or W.shape[1] != cin[0]:
            raise _weight_error(node, "W", f"(Cout, {cin[0]})")
        _check_vector(node, "B", W.shape[0])
        return W.shape[0]
    if op == "BatchNorm":
        for key in ("scale", "bias", "mean", "var"):
            _check_vector(node, key, cin[0])
        if (w["var"] < 0).any():
            raise ModelError(f"Node {node.name!r} (BatchNorm): weight 'var' has negative entries.")
        return cin[0]
    if op in ("Add", "Sub", "Mul", "Div"):
        if len(cin) == 2:
            a, b = cin
            if a != b and 1 not in (a, b):
                raise ModelError(
                    f"Node {node.name!r} ({op}): inputs have {a} and {b} channels; expected equal counts or one of 1."
                )
            return max(a, b)
        C = w["C"]
        if C.size == 1:
            return cin[0]
        if C.ndim != 1 or C.shape[0] != cin[0]:
            raise _weight_error(node, "C", f"({cin[0]},) or (1,)")
        return cin[0]
    if op == "Concat":
        return sum(cin)
    return cin[0]


def infer_channels(model: "Model") -> dict[str, int]:
    """Channels of every tensor; validates weight shapes against the graph."""
    channels = {model.input_name: model.input_channels}
    for node in model.nodes:
        channels[node.name] = _node_channels(node, [channels[s] for s in node.inputs])
    return channels


def conv_out_size(n: int, k: int, s: int, d: int, pad_total: int) -> int:
    """Output length of a convolution/pool along one axis (floor mode)."""
    return (n + pad_total - (k - 1) * d - 1) // s + 1


def resolved_pads(node: "Node", in_h: int, in_w: int) -> tuple[int, int, int, int]:
    """Explicit ``(top, left, bottom, right)`` pads of a Conv or pool for an input size.

    ``"same"`` padding (ONNX ``SAME_UPPER``/``SAME_LOWER``) depends on the
    input size when the stride is above 1, so it is resolved per image.
    """
    pads = node.attrs["pads"]
    if not isinstance(pads, str):
        return pads
    kernel = _kernel(node)
    stride, dil = node.attrs["stride"], node.attrs.get("dilation", (1, 1))
    begin, end = [], []
    for n, k, s, d in zip((in_h, in_w), kernel, stride, dil):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small = total // 2
        b = small if pads == "same" else total - small
        begin.append(b)
        end.append(total - b)
    return (begin[0], begin[1], end[0], end[1])


def _kernel(node: "Node") -> tuple[int, int]:
    if node.op in ("Conv", "ConvTranspose"):
        return tuple(node.weights["W"].shape[2:])  # type: ignore[return-value]
    return node.attrs["kernel"]


def _too_small(node: "Node", what: str) -> ShapeError:
    return ShapeError(f"Node {node.name!r} ({node.op}): the image is too small: {what}.")


def _spatial(node: "Node", ins: list[tuple[int, int, int]], cout: int) -> tuple[int, int, int]:
    op = node.op
    _, h, w = ins[0]
    if op in ("Conv", "MaxPool", "AveragePool"):
        k = _kernel(node)
        s, d = node.attrs["stride"], node.attrs.get("dilation", (1, 1))
        p = resolved_pads(node, h, w)
        oh = conv_out_size(h, k[0], s[0], d[0], p[0] + p[2])
        ow = conv_out_size(w, k[1], s[1], d[1], p[1] + p[3])
        if oh < 1 or ow < 1:
            raise _too_small(node, f"an input of {h} x {w} gives an output of {oh} x {ow}")
        return (cout, oh, ow)
    if op == "ConvTranspose":
        k = node.weights["W"].shape[2:]
        s, d, p, op_ = node.attrs["stride"], node.attrs["dilation"], node.attrs["pads"], node.attrs["output_padding"]
        if isinstance(p, str):
            raise ModelError(f"Node {node.name!r} (ConvTranspose): 'same' padding is not supported; give explicit pads.")
        oh = (h - 1) * s[0] - p[0] - p[2] + (k[0] - 1) * d[0] + 1 + op_[0]
        ow = (w - 1) * s[1] - p[1] - p[3] + (k[1] - 1) * d[1] + 1 + op_[1]
        if oh < 1 or ow < 1:
            raise _too_small(node, f"an input of {h} x {w} gives an output of {oh} x {ow}")
        return (cout, oh, ow)
    if op == "Resize":
        sy, sx = node.attrs["scales"]
        oh, ow = int(math.floor(h * sy)), int(math.floor(w * sx))
        if oh < 1 or ow < 1:
            raise _too_small(node, f"an input of {h} x {w} resized by {sy} x {sx} is empty")
        return (cout, oh, ow)
    if op == "Pad":
        p = node.attrs["pads"]
        return (cout, h + p[0] + p[2], w + p[1] + p[3])
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return (cout, 1, 1)
    if op in ("Add", "Sub", "Mul", "Div") and len(ins) == 2:
        (_, h1, w1), (_, h2, w2) = ins
        hh = _broadcast(node, h1, h2, "height")
        ww = _broadcast(node, w1, w2, "width")
        return (cout, hh, ww)
    if op == "Concat":
        sizes = {(i[1], i[2]) for i in ins}
        if len(sizes) != 1:
            raise ShapeError(
                f"Node {node.name!r} (Concat): inputs have different sizes {sorted(sizes)}; "
                "the image size is probably not a multiple of the model's stride."
            )
        return (cout, h, w)
    return (cout, h, w)


def _broadcast(node: "Node", a: int, b: int, axis: str) -> int:
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    raise ShapeError(
        f"Node {node.name!r} ({node.op}): inputs differ in {axis} ({a} vs {b}); "
        "the image size is probably not a multiple of the model's stride."
    )


def infer_shapes(model: "Model", height: int, width: int) -> dict[str, tuple[int, int, int]]:
    """Whole-image ``(C, H, W)`` of every tensor for an input of ``height x width``.

    Raises
    ------
    ShapeError
        When a layer's output would be empty or skip connections disagree in size.
    """
    return dict(_infer_shapes_cached(model, int(height), int(width)))


@lru_cache(maxsize=256)
def _infer_shapes_cached(model: "Model", height: int, width: int):
    if height < 1 or width < 1:
        raise ShapeError(f"Expected an image of at least 1 x 1 pixels. Got {height} x {width} instead.")
    shapes = {model.input_name: (model.input_channels, height, width)}
    for node in model.nodes:
        shapes[node.name] = _spatial(node, [shapes[s] for s in node.inputs], model.channels[node.name])
    return tuple(shapes.items())
