"""The op vocabulary: names, attributes, weights, and their validation.

This is the single description of every operation the engine understands.
The graph (:mod:`._graph`), shape inference (:mod:`._shapes`), geometry
(:mod:`._geometry`), the block executor (:mod:`._execute`) and the importers
all read it; none of them invents an op on its own.

Tensors are feature maps ``(C, H, W)`` (NCHW without the batch axis, as ONNX
and PyTorch lay them out); weights keep the ONNX layout.  Spatial attributes
are ``(y, x)`` pairs and ``pads`` is ``(top, left, bottom, right)``, ONNX's
``[y_begin, x_begin, y_end, x_end]``.

Op table
--------
=================  ==========================================  =====================================
op                 attributes (defaults)                       weights
=================  ==========================================  =====================================
Conv               stride (1,1), dilation (1,1), groups 1,      W (Cout, Cin/groups, KH, KW), B (Cout)?
                   pads (0,0,0,0) or "same"
ConvTranspose      stride, dilation, groups, pads,             W (Cin, Cout/groups, KH, KW), B (Cout)?
                   output_padding (0,0)
Dense              -                                           W (Cout, Cin), B (Cout)?
BatchNorm          epsilon 1e-5                                scale, bias, mean, var (C,)
Relu, Sigmoid,     -                                           -
Tanh, HardSwish,
Softmax, Identity
LeakyRelu          alpha 0.01                                  -
Clip               min -inf, max +inf                          -
HardSigmoid        alpha 0.2, beta 0.5                         -
MaxPool            kernel, stride (=kernel), dilation (1,1),   -
                   pads (0,0,0,0)
AveragePool        kernel, stride (=kernel), pads,             -
                   count_include_pad False
GlobalAveragePool  -                                           -
GlobalMaxPool      -                                           -
Resize             scales (sy, sx), mode "nearest"|"linear",   -
                   coordinate_transformation_mode
                   "half_pixel", nearest_mode "round_prefer_floor"
Pad                pads, value 0.0                             -
Add, Sub, Mul,     one or two tensor inputs; with one input    C (C,) or (1,) constant, optional
Div                the constant C is the other operand;
                   reverse False (True: C op x)
Concat             - (always over channels)                    -
=================  ==========================================  =====================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ModelError

__all__ = ["OpSpec", "OPS", "ACTIVATIONS", "ELEMENTWISE", "normalize_attrs"]


def _pair(name: str, minimum: int) -> Callable[[Any], tuple[int, int]]:
    def parse(value: Any) -> tuple[int, int]:
        if isinstance(value, (int, np.integer)):
            value = (int(value), int(value))
        try:
            y, x = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ModelError(f"Expected attribute {name!r} to be two integers (y, x). Got {value!r} instead.")
        if y < minimum or x < minimum:
            raise ModelError(f"Expected attribute {name!r} to be at least {minimum}. Got {value!r} instead.")
        return (y, x)

    return parse


def _pads(value: Any) -> tuple[int, int, int, int] | str:
    if isinstance(value, str):
        if value.lower() in ("same", "same_upper"):
            return "same"
        if value.lower() == "same_lower":
            return "same_lower"
        if value.lower() == "valid":
            return (0, 0, 0, 0)
        raise ModelError(f"Expected attribute 'pads' to be 4 integers or 'same'. Got {value!r} instead.")
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * 4
    try:
        pads = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(f"Expected attribute 'pads' to be 4 integers (top, left, bottom, right). Got {value!r} instead.")
    if len(pads) == 2:
        pads = (pads[0], pads[1], pads[0], pads[1])
    if len(pads) != 4 or min(pads) < 0:
        raise ModelError(
            f"Expected attribute 'pads' to be 4 non-negative integers (top, left, bottom, right). Got {value!r} instead."
        )
    return pads  # type: ignore[return-value]


def _int(name: str, minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise ModelError(f"Expected attribute {name!r} to be an integer. Got {value!r} instead.")
        if v < minimum:
            raise ModelError(f"Expected attribute {name!r} to be at least {minimum}. Got {v} instead.")
        return v

    return parse


def _float(name: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ModelError(f"Expected attribute {name!r} to be a number. Got {value!r} instead.")
        if math.isnan(v):
            raise ModelError(f"Expected attribute {name!r} to be a number. Got NaN instead.")
        return v

    return parse


def _bool(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if isinstance(value, (bool, np.bool_, int, np.integer)) and int(value) in (0, 1):
            return bool(value)
        raise ModelError(f"Expected attribute {name!r} to be true or false. Got {value!r} instead.")

    return parse


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ModelError(f"Expected attribute {name!r} to be one of {', '.join(choices)}. Got {value!r} instead.")
        return str(value)

    return parse


def _scales(value: Any) -> tuple[float, float]:
    try:
        sy, sx = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(f"Expected attribute 'scales' to be two positive numbers (y, x). Got {value!r} instead.")
    if not (sy > 0 and sx > 0):
        raise ModelError(f"Expected attribute 'scales' to be positive. Got {value!r} instead.")
    return (sy, sx)


@dataclass(frozen=True)
class OpSpec:
    """What an op takes: attribute parsers with defaults, weight names, input arity."""

    name: str
    attrs: dict[str, tuple[Callable[[Any], Any], Any]]
    required_weights: tuple[str, ...] = ()
    optional_weights: tuple[str, ...] = ()
    min_inputs: int = 1
    max_inputs: int = 1
    local: bool = True


_REQUIRED = object()

_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")

_conv_attrs = {
    "stride": (_pair("stride", 1), (1, 1)),
    "dilation": (_pair("dilation", 1), (1, 1)),
    "groups": (_int("groups", 1), 1),
    "pads": (_pads, (0, 0, 0, 0)),
}

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec("Conv", dict(_conv_attrs), ("W",), ("B",)),
        OpSpec(
            "ConvTranspose",
            {**_conv_attrs, "output_padding": (_pair("output_padding", 0), (0, 0))},
            ("W",),
            ("B",),
        ),
        OpSpec("Dense", {}, ("W",), ("B",)),
        OpSpec("BatchNorm", {"epsilon": (_float("epsilon"), 1e-5)}, ("scale", "bias", "mean", "var")),
        OpSpec("Relu", {}),
        OpSpec("LeakyRelu", {"alpha": (_float("alpha"), 0.01)}),
        OpSpec("Clip", {"min": (_float("min"), -math.inf), "max": (_float("max"), math.inf)}),
        OpSpec("Sigmoid", {}),
        OpSpec("Tanh", {}),
        OpSpec("HardSigmoid", {"alpha": (_float("alpha"), 0.2), "beta": (_float("beta"), 0.5)}),
        OpSpec("HardSwish", {}),
        OpSpec("Softmax", {}),
        OpSpec("Identity", {}),
        OpSpec(
            "MaxPool",
            {
                "kernel": (_pair("kernel", 1), _REQUIRED),
                "stride": (_pair("stride", 1), None),
                "dilation": (_pair("dilation", 1), (1, 1)),
                "pads": (_pads, (0, 0, 0, 0)),
            },
        ),
        OpSpec(
            "AveragePool",
            {
                "kernel": (_pair("kernel", 1), _REQUIRED),
                "stride": (_pair("stride", 1), None),
                "pads": (_pads, (0, 0, 0, 0)),
                "count_include_pad": (_bool("count_include_pad"), False),
            },
        ),
        OpSpec("GlobalAveragePool", {}, local=False),
        OpSpec("GlobalMaxPool", {}, local=False),
        OpSpec(
            "Resize",
            {
                "scales": (_scales, _REQUIRED),
                "mode": (_choice("mode", ("nearest", "linear")), "nearest"),
                "coordinate_transformation_mode": (
                    _choice("coordinate_transformation_mode", _COORD_MODES),
                    "half_pixel",
                ),
                "nearest_mode": (_choice("nearest_mode", _NEAREST_MODES), "round_prefer_floor"),
            },
        ),
        OpSpec("Pad", {"pads": (_pads, _REQUIRED), "value": (_float("value"), 0.0)}),
        *[
            OpSpec(name, {"reverse": (_bool("reverse"), False)}, (), ("C",), 1, 2)
            for name in ("Add", "Sub", "Mul", "Div")
        ],
        OpSpec("Concat", {}, min_inputs=1, max_inputs=1 << 30),
    ]
}

#: Pointwise ops with no weights that the executor may fuse into a conv epilogue.
ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish")
#: Binary element-wise ops.
ELEMENTWISE = ("Add", "Sub", "Mul", "Div")


def normalize_attrs(node_name: str, op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Validate ``attrs`` of an ``op`` node and fill in defaults.

    Raises
    ------
    ModelError
        On an unknown attribute, a missing required one, or a bad value; the
        message names the node.
    """
    spec = OPS[op]
    unknown = sorted(set(attrs) - set(spec.attrs))
    if unknown:
        raise ModelError(
            f"Node {node_name!r} ({op}): unknown attribute(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {sorted(spec.attrs) or 'none'}."
        )
    out: dict[str, Any] = {}
    for key, (parse, default) in spec.attrs.items():
        if key in attrs and attrs[key] is not None:
            try:
                out[key] = parse(attrs[key])
            except ModelError as exc:
                raise ModelError(f"Node {node_name!r} ({op}): {exc}") from None
        elif default is _REQUIRED:
            raise ModelError(f"Node {node_name!r} ({op}): missing required attribute {key!r}.")
        else:
            out[key] = default
    if op in ("MaxPool", "AveragePool") and out["stride"] is None:
        out["stride"] = out["kernel"]
    return out
