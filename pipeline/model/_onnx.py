"""ONNX import: an ONNX graph (opsets 7 to 22) as a :class:`~pipeline.model.Model`.

The ``onnx`` package is used to parse the protobuf only; nothing is executed
by ONNX Runtime.  The importer walks the ONNX nodes in dependency order and
gives every ONNX value one of two kinds:

* a *constant* (:class:`numpy.ndarray`): initializers, ``Constant`` nodes and
  everything computed from constants and from tensor *shapes*.  Shape chains
  (``Shape``/``Gather``/``Slice``/``Concat``/``Unsqueeze``/``Cast``/``Mul``/
  ``Floor``, ...) are evaluated at load time; a height or width is kept as a
  symbolic :class:`_Dim` ("height of tensor t times 2"), so that a ``Resize``
  by ``sizes`` or a ``Reshape`` to a computed shape can be proved equal to a
  fixed scale or to a no-op.  Constants never become nodes.
* a *feature* (:class:`_Feature`): a tensor of the network, produced by a
  :class:`~pipeline.model.Node`.  Besides its node it records the axis order
  (``layout``; ONNX exporters transpose around ``Softmax`` and ``MatMul``) and
  whether its height and width are known to be 1 (after global pooling), so
  that ``Flatten``/``Gemm``/``Reshape`` heads of squeeze-excitation blocks
  map to ``Dense`` nodes on 1 x 1 feature maps.

Every op the engine cannot run is found before any conversion, and reported in
one :class:`~pipeline.errors.UnsupportedOpError` listing each op type with its
node names.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ModelError, ModelFormatError, PipelineError, ShapeError, StorageError, UnsupportedOpError
from ._graph import Model, Node
from ._shapes import _node_channels

__all__ = ["load_onnx", "load_onnx_bytes", "model_from_onnx", "SUPPORTED_ONNX_OPS"]

#: Graph names exporters give every model; the file stem says more.
_EXPORTER_DEFAULT_NAMES = ("", "main_graph", "torch_jit", "torch-jit-export", "tf2onnx", "model")

#: Lowest and highest default-domain opset the importer accepts.
OPSET_RANGE = (7, 22)

_CANONICAL = (0, 1, 2, 3)  # N, C, H, W
_FLAT = (0, 1)  # N, C of a 1 x 1 feature map
_MAX_CONST_SIZE = 1 << 26  # elements; guards folding against corrupt shapes


# --------------------------------------------------------------------------- values
@dataclass(frozen=True)
class _Dim:
    """A spatial size known symbolically: ``factor`` times axis ``axis`` (2 or 3) of tensor ``tensor``.

    ``exact`` turns False when integer division or a floor may have dropped a
    fraction, so that the value no longer equals ``factor * size`` for every
    image size.
    """

    tensor: str
    axis: int
    factor: Fraction = Fraction(1)
    exact: bool = True

    def _scaled(self, k: Any, *, divide: bool = False) -> "_Dim":
        if isinstance(k, _Dim):
            raise _ShapeMath("a product of two image sizes")
        k = Fraction(float(k)) if isinstance(k, (float, np.floating)) else Fraction(int(k))
        if divide and k == 0:
            raise _ShapeMath("a division by zero")
        return _Dim(self.tensor, self.axis, self.factor / k if divide else self.factor * k, self.exact)

    def __mul__(self, k: Any) -> "_Dim":
        return self._scaled(k)

    __rmul__ = __mul__

    def __truediv__(self, k: Any) -> "_Dim":
        return self._scaled(k, divide=True)

    def __floordiv__(self, k: Any) -> "_Dim":
        out = self._scaled(k, divide=True)
        return out if out.factor.denominator == 1 else _Dim(out.tensor, out.axis, out.factor, False)

    def __add__(self, k: Any) -> "_Dim":
        if not isinstance(k, _Dim) and k == 0:
            return self
        raise _ShapeMath("a sum involving an image size")

    __radd__ = __add__
    __sub__ = __add__

    def __rsub__(self, k: Any) -> "_Dim":
        raise _ShapeMath("a difference involving an image size")

    def __rtruediv__(self, k: Any) -> "_Dim":
        raise _ShapeMath("a division by an image size")

    __rfloordiv__ = __rtruediv__

    def floor(self) -> "_Dim":
        return self if self.factor.denominator == 1 else _Dim(self.tensor, self.axis, self.factor, False)

    def __repr__(self) -> str:
        return f"{'HW'[self.axis - 2]}({self.tensor})*{self.factor}"


class _ShapeMath(Exception):
    """Raised inside shape folding; turned into an UnsupportedOpError naming the node."""


@dataclass(frozen=True)
class _Feature:
    """A tensor of the network: the model tensor ``name`` seen with ONNX axis order ``layout``.

    ``layout[i]`` is the NCHW axis held by ONNX axis ``i``; a rank-2 layout
    ``(0, 1)`` is a ``(N, C)`` view of a 1 x 1 map (``unit`` is then True).
    """

    name: str
    channels: int
    layout: tuple[int, ...] = _CANONICAL
    unit: bool = False

    @property
    def rank(self) -> int:
        return len(self.layout)

    def shape(self) -> np.ndarray:
        """The symbolic ``Shape`` of the tensor in ONNX axis order (object array)."""
        dims: list[Any] = []
        for axis in self.layout:
            if axis == 0:
                dims.append(1)
            elif axis == 1:
                dims.append(self.channels)
            else:
                dims.append(1 if self.unit else _Dim(self.name, axis))
        return np.array(dims, dtype=object)


# --------------------------------------------------------------------------- entry points
def load_onnx(path: "str | os.PathLike") -> Model:
    """Import an ONNX file as a :class:`~pipeline.model.Model`.

    Parameters
    ----------
    path : str or path-like
        An ``.onnx`` file holding a network with one ``(N, C, H, W)`` float
        input (``N`` 1 or symbolic, ``C`` known, ``H``/``W`` usually symbolic)
        and one output.

    Returns
    -------
    Model
        Named after the ONNX graph (the file stem when the graph has no name or an exporter's default
        name such as PyTorch's ``main_graph``),
        with the model's ``metadata_props`` as metadata.

    Raises
    ------
    StorageError
        The file cannot be read.
    ModelFormatError
        The file is not a valid ONNX protobuf.
    UnsupportedOpError
        The graph uses ops or attributes the engine cannot run; all
        unsupported op types are listed with their node names.
    ModelError
        The graph is inconsistent (missing initializer, cycle, wrong weights).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"Cannot read ONNX file {str(path)!r}: {exc.strerror or exc}.") from None
    return load_onnx_bytes(data, name=path.stem, source=str(path))


def load_onnx_bytes(data: bytes, *, name: str = "model", source: str = "ONNX model") -> Model:
    """Import a serialized ONNX model (``bytes``); see :func:`load_onnx`.

    ``name`` is used when the graph has none; ``source`` names the model in
    error messages.
    """
    proto = _parse(bytes(data), source)
    return model_from_onnx(proto, name=name, source=source)


def model_from_onnx(proto: Any, *, name: str = "model", source: str = "ONNX model") -> Model:
    """Import an ``onnx.ModelProto``; see :func:`load_onnx`."""
    try:
        return _Importer(proto, name, source).run()
    except PipelineError:
        raise
    except RecursionError:
        raise ModelFormatError(f"{source}: the ONNX graph is nested too deeply to import.") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, ZeroDivisionError,
            ArithmeticError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{source}: the ONNX model is malformed ({type(exc).__name__}: {exc}).") from None


def _parse(data: bytes, source: str):
    import onnx
    from google.protobuf.message import DecodeError

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OverflowError) as exc:
        raise ModelFormatError(f"{source}: expected an ONNX protobuf. Cannot parse it ({exc}).") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelFormatError(f"{source}: expected an ONNX model with a graph of nodes. Got none.")
    return proto


# --------------------------------------------------------------------------- the importer
class _Importer:
    def __init__(self, proto: Any, name: str, source: str) -> None:
        self.proto = proto
        self.graph = proto.graph
        self.source = source
        self.default_name = name
        self.opset = self._opset()
        self.values: dict[str, Any] = {}  # ONNX value name -> ndarray | _Feature
        self.nodes: dict[str, Node] = {}  # model nodes by name, in creation order
        self.channels: dict[str, int] = {}
        self.origin: dict[str, str] = {}  # model node name -> the ONNX value it produced directly
        self.consumers: Counter[str] = Counter()
        self.graph_outputs: set[str] = set()
        self.onnx_node: Any = None  # the node being converted (for messages)
        self.input_name = ""

    # -- messages ------------------------------------------------------------
    def _where(self) -> str:
        n = self.onnx_node
        return f"{self.source}: node {_node_label(n)!r} ({n.op_type})"

    def error(self, message: str) -> ModelError:
        return ModelError(f"{self._where()}: {message}")

    def unsupported(self, message: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self._where()}: {message}")

    # -- the walk ------------------------------------------------------------
    def run(self) -> Model:
        self._initializers()
        nodes = self._sorted_nodes()
        self._check_supported(nodes)
        input_name, input_channels = self._inputs()
        self.input_name = input_name
        for node in nodes:
            for value in node.input:
                if value:
                    self.consumers[value] += 1
        outputs = list(self.graph.output)
        if len(outputs) != 1:
            raise ModelError(
                f"{self.source}: expected a graph with one output. Got {len(outputs)} ({[o.name for o in outputs]}) instead."
            )
        self.graph_outputs = {outputs[0].name}
        for node in nodes:
            self.onnx_node = node
            self._convert(node)
        self.onnx_node = None
        return self._model(outputs[0].name, input_name, input_channels)

    def _opset(self) -> int:
        versions = [o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise ModelFormatError(f"{self.source}: expected an opset_import of the default ONNX domain. Got none.")
        opset = int(versions[0])
        lo, hi = OPSET_RANGE
        if not lo <= opset <= hi:
            raise UnsupportedOpError(f"{self.source}: expected ONNX opset {lo} to {hi}. Got opset {opset} instead.")
        return opset

    def _initializers(self) -> None:
        from onnx import numpy_helper

        for tensor in self.graph.initializer:
            self.values[tensor.name] = self._tensor_to_array(tensor, f"initializer {tensor.name!r}", numpy_helper)

    def _tensor_to_array(self, tensor: Any, what: str, numpy_helper: Any) -> np.ndarray:
        if tensor.data_location == 1 or len(tensor.external_data):
            raise ModelFormatError(f"{self.source}: {what} keeps its data in an external file; expected embedded data.")
        size = 1
        for d in tensor.dims:
            if d < 0:
                raise ModelFormatError(f"{self.source}: {what} has a negative dimension {list(tensor.dims)}.")
            size *= int(d)
        if size > _MAX_CONST_SIZE:
            raise ModelFormatError(f"{self.source}: {what} claims {size} elements; expected at most {_MAX_CONST_SIZE}.")
        try:
            arr = numpy_helper.to_array(tensor)
        except Exception as exc:  # onnx raises a variety of types on corrupt tensors
            raise ModelFormatError(f"{self.source}: {what} cannot be decoded ({type(exc).__name__}: {exc}).") from None
        if arr.dtype.kind not in "fiub":
            try:  # bfloat16 and float8 come as ml_dtypes scalars
                arr = np.asarray(arr, dtype=np.float32) if arr.dtype.kind == "V" else None
            except (TypeError, ValueError):
                arr = None
            if arr is None:
                raise ModelFormatError(f"{self.source}: {what} has dtype {tensor.data_type}; expected a numeric tensor.")
        return np.array(arr)

    def _sorted_nodes(self) -> list[Any]:
        """ONNX nodes in dependency order; rejects cycles, duplicate and missing values."""
        available = set(self.values) | {i.name for i in self.graph.input}
        producer: dict[str, int] = {}
        nodes = list(self.graph.node)
        for i, node in enumerate(nodes):
            for out in node.output:
                if not out:
                    continue
                if out in producer or out in available:
                    raise ModelError(f"{self.source}: value {out!r} is produced twice (node {node.name or out!r}).")
                producer[out] = i
        for node in nodes:
            for value in node.input:
                if value and value not in producer and value not in available:
                    raise ModelError(
                        f"{self.source}: node {_node_label(node)!r} ({node.op_type}) "
                        f"reads {value!r}, which no node, initializer or graph input provides."
                    )
        order: list[int] = []
        state = [0] * len(nodes)  # 0 new, 1 on stack, 2 done
        for start in range(len(nodes)):
            if state[start]:
                continue
            stack = [(start, iter([producer[v] for v in nodes[start].input if v in producer]))]
            state[start] = 1
            while stack:
                i, deps = stack[-1]
                for j in deps:
                    if state[j] == 1:
                        name = nodes[j].name or nodes[j].output[0]
                        raise ModelError(f"{self.source}: the graph has a cycle through node {name!r}.")
                    if state[j] == 0:
                        state[j] = 1
                        stack.append((j, iter([producer[v] for v in nodes[j].input if v in producer])))
                        break
                else:
                    stack.pop()
                    state[i] = 2
                    order.append(i)
        return [nodes[i] for i in order]

    def _check_supported(self, nodes: list[Any]) -> None:
        bad: dict[str, list[str]] = {}
        for node in nodes:
            if node.domain not in ("", "ai.onnx") or node.op_type not in _CONVERTERS:
                key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                bad.setdefault(key, []).append(_node_label(node))
        if bad:
            listed = "; ".join(f"{op} (node{'s' if len(v) > 1 else ''} {', '.join(map(repr, v))})" for op, v in sorted(bad.items()))
            raise UnsupportedOpError(f"{self.source}: unsupported ONNX op(s): {listed}.")

    def _inputs(self) -> tuple[str, int]:
        inputs = [i for i in self.graph.input if i.name not in self.values]
        if len(inputs) != 1:
            raise ModelError(
                f"{self.source}: expected one graph input (the image). Got {len(inputs)} ({[i.name for i in inputs]}) instead."
            )
        inp = inputs[0]
        ttype = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or ttype.elem_type not in (1, 10, 11, 16):
            raise ModelError(f"{self.source}: input {inp.name!r} must be a float tensor (N, C, H, W).")
        dims = list(ttype.shape.dim) if ttype.HasField("shape") else []
        if len(dims) != 4:
            raise ModelError(
                f"{self.source}: input {inp.name!r}: expected shape (N, C, H, W). Got {len(dims)} dimension(s) instead."
            )
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise ModelError(f"{self.source}: input {inp.name!r}: expected batch size 1 or symbolic. Got {dims[0].dim_value}.")
        if not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
            raise ModelError(f"{self.source}: input {inp.name!r}: expected a known number of channels on axis 1.")
        channels = int(dims[1].dim_value)
        name = inp.name or "input"
        self.values[inp.name] = _Feature(name, channels)
        self.channels[name] = channels
        return name, channels

    def _model(self, output: str, input_name: str, input_channels: int) -> Model:
        value = self.values.get(output)
        if not isinstance(value, _Feature):
            raise ModelError(f"{self.source}: output {output!r} is a constant; expected a feature map of the network.")
        if value.layout != _CANONICAL:
            raise ModelError(
                f"{self.source}: output {output!r}: expected a (N, C, H, W) feature map. Got axes "
                f"{''.join('NCHW'[a] for a in value.layout)} instead."
            )
        out_name = value.name
        if out_name == input_name:
            out_name = self._unique(output)
            self.nodes[out_name] = Node(out_name, "Identity", (input_name,))
        metadata = {p.key: p.value for p in self.proto.metadata_props}
        model = Model(
            self.nodes.values(),
            input_channels=input_channels,
            input_name=input_name,
            output=out_name,
            name=self.graph.name if self.graph.name not in _EXPORTER_DEFAULT_NAMES else self.default_name,
            metadata=metadata,
        )
        try:  # branches that cannot line up (strides disagreeing before an Add or Concat) fail here, at load
            model.geometry
        except ShapeError as exc:
            raise ModelError(f"{self.source}: the network's branches do not line up for any image size ({exc})") from None
        return model

    # -- conversion helpers --------------------------------------------------
    def _convert(self, node: Any) -> None:
        inputs = [self.values[v] if v else None for v in node.input]
        need = _MIN_INPUTS.get(node.op_type, 1)
        if len(inputs) < need or any(v is None for v in inputs[:need]):
            raise self.error(f"expected at least {need} input(s). Got {sum(v is not None for v in inputs)} instead.")
        if not node.output or not node.output[0]:
            raise self.error("expected an output. Got none.")
        try:
            result = _CONVERTERS[node.op_type](self, node, inputs, _attrs(node))
        except _ShapeMath as exc:
            raise self.unsupported(f"cannot evaluate the shape computation: {exc}.") from None
        except PipelineError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
            raise ModelFormatError(f"{self._where()}: malformed inputs or attributes ({type(exc).__name__}: {exc}).") from None
        results = result if isinstance(result, tuple) else (result,)
        for out, value in zip(node.output, results):
            if out:
                self.values[out] = value if isinstance(value, _Feature) else _as_array(value)
        for out in node.output[len(results):]:
            if out and self.consumers[out]:
                raise self.unsupported(f"output {out!r} is only produced in training mode; expected it unused.")

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.nodes or name == self.input_name:
            i += 1
            name = f"{base}_{i}"
        return name

    def add(self, op: str, inputs: list[_Feature], attrs: dict | None = None, weights: dict | None = None,
            *, layout: tuple[int, ...] | None = None, unit: bool | None = None) -> _Feature:
        """Create a model node from the current ONNX node; returns its feature."""
        onnx_node = self.onnx_node
        name = self._unique(onnx_node.name or onnx_node.output[0])
        try:
            node = Node(name, op, tuple(f.name for f in inputs), attrs or {}, weights or {})
            channels = _node_channels(node, [f.channels for f in inputs])
        except ModelError as exc:
            raise ModelError(f"{self.source}: {exc}") from None
        self.nodes[name] = node
        self.channels[name] = channels
        self.origin[name] = onnx_node.output[0]
        lay = inputs[0].layout if layout is None else layout
        is_unit = all(f.unit for f in inputs) if unit is None else unit
        return _Feature(name, channels, lay, is_unit)

    def feature(self, value: Any, what: str = "input") -> _Feature:
        if not isinstance(value, _Feature):
            raise self.unsupported(f"expected its {what} to be a feature map of the network. Got a constant instead.")
        return value

    def spatial(self, value: Any) -> _Feature:
        f = self.feature(value)
        if f.layout != _CANONICAL:
            raise self.unsupported(
                f"expected a (N, C, H, W) feature map. Got axes {''.join('NCHW'[a] for a in f.layout)} instead."
            )
        return f

    def const(self, value: Any, what: str, *, numeric: bool = True) -> np.ndarray:
        if isinstance(value, _Feature):
            raise self.unsupported(f"expected {what} to be a constant. Got the feature map {value.name!r} instead.")
        if value is None:
            raise self.error(f"expected {what}. Got none.")
        if numeric and value.dtype == object:
            raise self.unsupported(f"expected {what} to be a constant. Got a value depending on the image size.")
        return value

    def is_sole_use(self, feat: _Feature, onnx_value: str) -> bool:
        return (
            self.origin.get(feat.name) == onnx_value
            and self.consumers[onnx_value] == 1
            and onnx_value not in self.graph_outputs
        )

    def replace(self, node: Node) -> None:
        self.nodes[node.name] = node


def _node_label(node: Any) -> str:
    return node.name or (node.output[0] if node.output else "?")


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        if a.type == 5:  # GRAPH
            raise UnsupportedOpError(f"node {node.name!r} ({node.op_type}): subgraph attributes are not supported.")
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        out[a.name] = value
    return out


def _opt(inputs: list[Any], i: int) -> Any:
    return inputs[i] if len(inputs) > i else None


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _check_spatial_2d(imp: _Importer, attrs: dict, key: str) -> None:
    if key in attrs and len(attrs[key]) != 2:
        raise imp.unsupported(f"attribute {key!r} = {list(attrs[key])}: expected 2 values (2-D images).")


def _pads_from(imp: _Importer, attrs: dict) -> Any:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise imp.unsupported(f"attribute 'pads' = {pads}: expected 4 values (2-D images).")
        return tuple(pads)
    if auto == "SAME_UPPER":
        return "same"
    if auto == "SAME_LOWER":
        return "same_lower"
    if auto == "VALID":
        return (0, 0, 0, 0)
    raise imp.error(f"expected auto_pad NOTSET, SAME_UPPER, SAME_LOWER or VALID. Got {auto!r} instead.")


def _ceil_mode(imp: _Importer, attrs: dict) -> None:
    if int(attrs.get("ceil_mode", 0)) and any(s != 1 for s in attrs.get("strides", [1, 1])):
        raise imp.unsupported(
            "ceil_mode=1 with a stride above 1 gives other output sizes than floor mode for some image sizes; "
            "expected ceil_mode=0."
        )


# --------------------------------------------------------------------------- converters: network ops
def _conv(imp: _Importer, node, inputs, attrs):
    x = imp.spatial(inputs[0])
    W = imp.const(inputs[1], "the weight W")
    if W.ndim != 4:
        raise imp.error(f"weight W should be 4-D (Cout, Cin/groups, KH, KW). Got shape {W.shape} instead.")
    if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != W.shape[2:]:
        raise imp.error(f"kernel_shape {list(attrs['kernel_shape'])} disagrees with weight W of shape {W.shape}.")
    for key in ("strides", "dilations"):
        _check_spatial_2d(imp, attrs, key)
    weights = {"W": W}
    B = _opt(inputs, 2)
    if B is not None:
        weights["B"] = imp.const(B, "the bias B")
    a = {
        "stride": tuple(attrs.get("strides", (1, 1))),
        "dilation": tuple(attrs.get("dilations", (1, 1))),
        "groups": int(attrs.get("group", 1)),
        "pads": _pads_from(imp, attrs),
    }
    if node.op_type == "ConvTranspose":
        if "output_shape" in attrs:
            raise imp.unsupported("attribute 'output_shape' depends on the image size; expected pads and output_padding.")
        a["output_padding"] = tuple(attrs.get("output_padding", (0, 0)))
        if isinstance(a["pads"], str):
            a["pads"] = _conv_transpose_same_pads(imp, a, W.shape[2:])
    return imp.add(node.op_type, [x], a, weights)


def _conv_transpose_same_pads(imp: _Importer, a: dict, kernel) -> tuple[int, int, int, int]:
    """Explicit pads of a ConvTranspose with auto_pad SAME_*: output = input * stride for every size."""
    begin, end = [], []
    for k, s, d, op in zip(kernel, a["stride"], a["dilation"], a["output_padding"]):
        total = op + (k - 1) * d + 1 - s
        if total < 0:
            raise imp.unsupported(f"auto_pad {a['pads']!r} needs negative padding {total}; expected a kernel >= stride.")
        small, large = total // 2, total - total // 2
        b, e = (small, large) if a["pads"] == "same" else (large, small)
        begin.append(b)
        end.append(e)
    return (begin[0], begin[1], end[0], end[1])


def _gemm(imp: _Importer, node, inputs, attrs):
    x = imp.feature(inputs[0])
    if x.layout != _FLAT:
        raise imp.unsupported("expected input A to be a (N, C) vector of a 1 x 1 feature map (e.g. after Flatten).")
    if int(attrs.get("transA", 0)):
        raise imp.unsupported("transA=1 transposes the feature vector; expected transA=0.")
    B = imp.const(inputs[1], "input B")
    if B.ndim != 2:
        raise imp.error(f"input B should be 2-D. Got shape {B.shape} instead.")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    W = (B if int(attrs.get("transB", 0)) else B.T).astype(np.float64) * alpha
    weights = {"W": W}
    C = _opt(inputs, 2)
    if C is not None:
        C = imp.const(C, "input C").astype(np.float64) * beta
        if C.size not in (1, W.shape[0]) or (C.ndim == 2 and C.shape[0] != 1) or C.ndim > 2:
            raise imp.error(f"input C of shape {C.shape} does not broadcast to ({W.shape[0]},).")
        weights["B"] = np.broadcast_to(C.reshape(-1), (W.shape[0],))
    return imp.add("Dense", [x], {}, weights)


def _matmul(imp: _Importer, node, inputs, attrs):
    x = imp.feature(inputs[0], "first input")
    if x.layout[-1] != 1:
        raise imp.unsupported("expected the multiplication to run over the channel axis (channels last).")
    B = imp.const(inputs[1], "the second input")
    if B.ndim != 2:
        raise imp.unsupported(f"expected a 2-D constant second input (Cin, Cout). Got shape {B.shape} instead.")
    return imp.add("Dense", [x], {}, {"W": B.T})


def _batchnorm(imp: _Importer, node, inputs, attrs):
    x = imp.feature(inputs[0])
    if x.layout[1] != 1:
        raise imp.unsupported("expected the channels on axis 1.")
    if int(attrs.get("training_mode", 0)):
        raise imp.unsupported("training_mode=1; expected an inference graph.")
    scale, bias, mean, var = (imp.const(v, what).astype(np.float64).reshape(-1) if v is not None else None
                              for v, what in zip(inputs[1:5], ("scale", "B", "mean", "var")))
    if any(v is None for v in (scale, bias, mean, var)):
        raise imp.error("expected 5 inputs (X, scale, B, input_mean, input_var).")
    eps = float(attrs.get("epsilon", 1e-5))
    for key, v in (("scale", scale), ("B", bias), ("mean", mean), ("var", var)):
        if v.shape != (x.channels,):
            raise imp.error(f"input {key!r} should have shape ({x.channels},). Got {v.shape} instead.")
    if (var + eps <= 0).any():
        raise imp.error("input_var + epsilon has non-positive entries.")
    prev = imp.nodes.get(x.name)
    if prev is not None and prev.op in ("Conv", "ConvTranspose", "Dense") and imp.is_sole_use(x, node.input[0]):
        imp.replace(_fold_batchnorm(prev, scale / np.sqrt(var + eps), bias - mean * scale / np.sqrt(var + eps)))
        return x
    weights = {"scale": scale, "bias": bias, "mean": mean, "var": var}
    return imp.add("BatchNorm", [x], {"epsilon": eps}, weights)


def _fold_batchnorm(node: Node, scale: np.ndarray, shift: np.ndarray) -> Node:
    """``node`` followed by ``y * scale + shift`` per output channel, as one node (float64 maths)."""
    W = np.asarray(node.weights["W"], dtype=np.float64)
    if node.op == "ConvTranspose":
        g = node.attrs["groups"]
        cin, cog = W.shape[:2]
        W = (W.reshape(g, cin // g, cog, *W.shape[2:]) * scale.reshape(g, 1, cog, 1, 1)).reshape(W.shape)
    else:
        W = W * scale.reshape(-1, *([1] * (W.ndim - 1)))
    B = np.asarray(node.weights["B"], dtype=np.float64) if "B" in node.weights else np.zeros(len(scale))
    weights = {"W": W, "B": B * scale + shift}
    return Node(node.name, node.op, node.inputs, dict(node.attrs), weights)


def _unary(op: str, defaults: dict[str, float] | None = None):
    def convert(imp: _Importer, node, inputs, attrs):
        x = imp.feature(inputs[0])
        a = {k: float(attrs.get(k, v)) for k, v in (defaults or {}).items()}
        return imp.add(op, [x], a)

    return convert


def _clip(imp: _Importer, node, inputs, attrs):
    x = imp.feature(inputs[0])
    lo, hi = attrs.get("min", -math.inf), attrs.get("max", math.inf)
    if _opt(inputs, 1) is not None:
        lo = imp.const(inputs[1], "input min")
    if _opt(inputs, 2) is not None:
        hi = imp.const(inputs[2], "input max")
    lo, hi = (float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 else None for v in (lo, hi))
    if lo is None or hi is None:
        raise imp.error("expected scalar min and max.")
    return imp.add("Clip", [x], {"min": lo, "max": hi})


def _softmax(imp: _Importer, node, inputs, attrs):
    x = imp.feature(inputs[0])
    axis = int(attrs.get("axis", -1 if imp.opset >= 13 else 1))
    if not -x.rank <= axis < x.rank:
        raise imp.error(f"axis {axis} is out of range for a {x.rank}-D tensor.")
    axis %= x.rank
    later = x.layout[axis + 1:]
    over_channels = x.layout[axis] == 1 and (imp.opset >= 13 or not later or (x.unit and 0 not in later))
    if not over_channels:
        raise imp.unsupported(f"axis {attrs.get('axis', 'default')} is not the channel axis; expected a softmax over channels.")
    return imp.add("Softmax", [x])


def _pool(imp: _Importer, node, inputs, attrs):
    x = imp.spatial(inputs[0])
    for key in ("kernel_shape", "strides", "dilations"):
        _check_spatial_2d(imp, attrs, key)
    if "kernel_shape" not in attrs:
        raise imp.error("missing attribute 'kernel_shape'.")
    _ceil_mode(imp, attrs)
    a = {
        "kernel": tuple(attrs["kernel_shape"]),
        "stride": tuple(attrs.get("strides", (1, 1))),
        "pads": _pads_from(imp, attrs),
    }
    if node.op_type == "MaxPool":
        a["dilation"] = tuple(attrs.get("dilations", (1, 1)))
    else:
        if any(d != 1 for d in attrs.get("dilations", (1, 1))):
            raise imp.unsupported("dilated average pooling is not supported; expected dilations 1.")
        a["count_include_pad"] = bool(int(attrs.get("count_include_pad", 0)))
    return imp.add(node.op_type, [x], a)


def _global_pool(op: str):
    def convert(imp: _Importer, node, inputs, attrs):
        x = imp.spatial(inputs[0])
        return imp.add(op, [x], unit=True)

    return convert


def _reduce(op: str):
    def convert(imp: _Importer, node, inputs, attrs):
        x = imp.feature(inputs[0])
        axes = attrs.get("axes")
        if axes is None and _opt(inputs, 1) is not None:
            axes = _ints(imp.const(inputs[1], "input axes"))
        if axes is None:
            raise imp.unsupported("reducing over all axes; expected axes (2, 3).")
        axes = sorted(int(a) % x.rank for a in axes)
        if x.rank != 4 or sorted(x.layout[a] for a in axes) != [2, 3]:
            raise imp.unsupported(f"axes {axes}: expected a reduction over height and width.")
        if x.layout != _CANONICAL:
            raise imp.unsupported("expected a (N, C, H, W) feature map.")
        keep = int(attrs.get("keepdims", 1))
        return imp.add(op, [x], unit=True, layout=_CANONICAL if keep else _FLAT)

    return convert


def _resize(imp: _Importer, node, inputs, attrs):
    x = imp.spatial(inputs[0])
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise imp.unsupported(f"mode {mode!r}; expected nearest or linear.")
    mode = "linear" if mode == "bilinear" else mode
    if node.op_type == "Upsample" or imp.opset < 11:
        ctm, nearest = "asymmetric", "floor"
        scales = attrs.get("scales")
        if scales is None:
            scales = imp.const(_opt(inputs, 1), "the scales input")
        sizes = None
    else:
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        if ctm == "tf_crop_and_resize":
            raise imp.unsupported("coordinate_transformation_mode 'tf_crop_and_resize' is not supported.")
        if ctm == "tf_half_pixel_for_nn":
            raise imp.unsupported("coordinate_transformation_mode 'tf_half_pixel_for_nn' is not supported.")
        if int(attrs.get("antialias", 0)):
            raise imp.unsupported("antialias=1 is not supported.")
        if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise imp.unsupported("keep_aspect_ratio_policy other than 'stretch' is not supported.")
        scales = _opt(inputs, 2)
        scales = imp.const(scales, "the scales input") if scales is not None else None
        if scales is not None and scales.size == 0:
            scales = None
        sizes = _opt(inputs, 3)
        sizes = imp.const(sizes, "the sizes input", numeric=False) if sizes is not None else None
    axes = attrs.get("axes")
    if scales is not None:
        sy, sx = _resize_scales(imp, x, np.asarray(scales, dtype=np.float64).reshape(-1), axes)
    elif sizes is not None:
        sy, sx = _resize_sizes(imp, x, np.asarray(sizes, dtype=object).reshape(-1), axes)
    else:
        raise imp.error("expected scales or sizes. Got neither.")
    a = {"scales": (sy, sx), "mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nearest}
    return imp.add("Resize", [x], a)


def _full_axes(imp: _Importer, values: list[Any], axes: Any, fill: Any) -> list[Any]:
    if axes is None:
        if len(values) != 4:
            raise imp.error(f"expected 4 values (N, C, H, W). Got {len(values)} instead.")
        return list(values)
    full = [fill] * 4
    for a, v in zip(axes, values):
        full[int(a) % 4] = v
    return full


def _resize_scales(imp: _Importer, x: _Feature, scales: np.ndarray, axes: Any) -> tuple[float, float]:
    s = _full_axes(imp, list(scales), axes, 1.0)
    if s[0] != 1 or s[1] != 1:
        raise imp.unsupported(f"scales {list(scales)}: expected 1 on the batch and channel axes.")
    if not (s[2] > 0 and s[3] > 0):
        raise imp.error(f"scales {list(scales)}: expected positive spatial scales.")
    return float(s[2]), float(s[3])


def _resize_sizes(imp: _Importer, x: _Feature, sizes: np.ndarray, axes: Any) -> tuple[float, float]:
    shape = list(x.shape())
    full = _full_axes(imp, list(sizes), axes, None)
    full = [shape[i] if v is None else v for i, v in enumerate(full)]
    if full[0] != 1 or full[1] != x.channels:
        raise imp.unsupported(f"sizes {full}: expected the batch and channel sizes unchanged.")
    scales = []
    for axis in (2, 3):
        v = full[axis]
        if not (isinstance(v, _Dim) and v.tensor == x.name and v.axis == axis and v.exact
                and v.factor.denominator == 1 and v.factor > 0):
            raise imp.unsupported(
                f"output {'height' if axis == 2 else 'width'} {v!r}: expected the input's own size times a "
                "whole number (fixed output sizes cannot follow the image size)."
            )
        scales.append(float(v.factor))
    return scales[0], scales[1]


def _pad(imp: _Importer, node, inputs, attrs):
    x = imp.spatial(inputs[0])
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise imp.unsupported(f"mode {mode!r}; expected 'constant'.")
    if imp.opset < 11:
        pads, value = list(attrs.get("pads", [])), float(attrs.get("value", 0.0))
        axes = None
    else:
        pads = _ints(imp.const(_opt(inputs, 1), "the pads input"))
        v = _opt(inputs, 2)
        value = float(np.asarray(imp.const(v, "the constant_value input")).reshape(-1)[0]) if v is not None and np.size(v) else 0.0
        ax = _opt(inputs, 3)
        axes = _ints(imp.const(ax, "the axes input")) if ax is not None else None
    n = len(pads) // 2
    if len(pads) % 2 or (axes is None and n != 4) or (axes is not None and n != len(axes)):
        raise imp.error(f"pads {pads}: expected begin and end values for each padded axis.")
    begin = _full_axes(imp, pads[:n], axes, 0)
    end = _full_axes(imp, pads[n:], axes, 0)
    if begin[0] or begin[1] or end[0] or end[1]:
        raise imp.unsupported(f"pads {pads}: expected padding of height and width only.")
    if min(begin + end) < 0:
        raise imp.unsupported(f"pads {pads}: negative pads (cropping) are not supported.")
    return imp.add("Pad", [x], {"pads": (begin[2], begin[3], end[2], end[3]), "value": value})


def _binary(imp: _Importer, node, inputs, attrs):
    a, b = inputs[0], inputs[1]
    op = node.op_type
    if not isinstance(a, _Feature) and not isinstance(b, _Feature):
        return _fold_binary(op, imp.const(a, "input A", numeric=False), imp.const(b, "input B", numeric=False))
    if isinstance(a, _Feature) and isinstance(b, _Feature):
        if a.layout != b.layout:
            raise imp.unsupported(f"inputs {a.name!r} and {b.name!r} have different layouts; expected the same axes.")
        return imp.add(op, [a, b])
    feat, const, reverse = (a, b, False) if isinstance(a, _Feature) else (b, a, True)
    const = imp.const(const, "the constant operand")
    C = _per_channel(imp, feat, const)
    if op in ("Add", "Sub") and not reverse and not C.any():
        return feat
    if op in ("Mul", "Div") and not reverse and (C == 1).all():
        return feat
    return imp.add(op, [feat], {"reverse": reverse}, {"C": C})


def _per_channel(imp: _Importer, feat: _Feature, const: np.ndarray) -> np.ndarray:
    """The constant of a binary op as a (C,) or (1,) vector, if it broadcasts per channel only."""
    if const.ndim > feat.rank:
        raise imp.unsupported(f"constant of shape {const.shape} would add axes to the feature map.")
    shape = (1,) * (feat.rank - const.ndim) + const.shape
    varying = [i for i, n in enumerate(shape) if n != 1]
    if any(feat.layout[i] != 1 for i in varying):
        raise imp.unsupported(f"constant of shape {const.shape}: expected a scalar or one value per channel.")
    C = np.asarray(const, dtype=np.float64).reshape(-1)
    if C.size not in (1, feat.channels):
        raise imp.error(f"constant of shape {const.shape} does not match {feat.channels} channels.")
    return C


def _concat(imp: _Importer, node, inputs, attrs):
    axis = int(attrs.get("axis", 0))
    if all(not isinstance(v, _Feature) for v in inputs):
        arrays = [imp.const(v, "every input", numeric=False) for v in inputs]
        return np.concatenate([np.atleast_1d(a) for a in arrays], axis=axis)
    feats = [imp.feature(v, "every input") for v in inputs]
    layout = feats[0].layout
    if any(f.layout != layout for f in feats) or not -len(layout) <= axis < len(layout) or layout[axis % len(layout)] != 1:
        raise imp.unsupported(f"axis {axis}: expected a concatenation of feature maps over channels.")
    return imp.add("Concat", feats)


def _alias(imp: _Importer, node, inputs, attrs):
    x = inputs[0]
    if node.op_type == "Dropout" and len(inputs) > 2 and inputs[2] is not None:
        if np.asarray(imp.const(inputs[2], "training_mode")).any():
            raise imp.unsupported("training_mode is true; expected inference.")
    return x


def _cast(imp: _Importer, node, inputs, attrs):
    from onnx import helper

    to = int(attrs.get("to", 1))
    x = inputs[0]
    if isinstance(x, _Feature):
        if to not in (1, 10, 11, 16):
            raise imp.unsupported("casting a feature map to a non-float type is not supported.")
        return x
    dtype = helper.tensor_dtype_to_np_dtype(to)
    if x.dtype == object:
        if dtype.kind in "iu":
            return np.array([v.floor() if isinstance(v, _Dim) else int(v) for v in x.reshape(-1)],
                            dtype=object).reshape(x.shape)
        return x
    return x.astype(dtype)


# --------------------------------------------------------------------------- converters: shape ops
def _shape(imp: _Importer, node, inputs, attrs):
    x = inputs[0]
    shape = x.shape() if isinstance(x, _Feature) else np.array(imp.const(x, "input", numeric=False).shape, dtype=np.int64)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    return _simplify(shape[start:None if end is None else int(end)])


def _as_array(value: Any) -> np.ndarray:
    """A folded value as an array: symbolic scalars become 0-d object arrays."""
    if isinstance(value, np.ndarray):
        return _simplify(value)
    if isinstance(value, _Dim):
        out = np.empty((), dtype=object)
        out[()] = value
        return out
    return _simplify(np.asarray(value))


def _simplify(arr: np.ndarray) -> np.ndarray:
    """Object arrays without symbolic entries become int64 arrays."""
    if arr.dtype == object and not any(isinstance(v, _Dim) for v in arr.reshape(-1)):
        return np.array(arr.tolist(), dtype=np.int64).reshape(arr.shape)
    return arr


def _gather(imp: _Importer, node, inputs, attrs):
    data = imp.const(inputs[0], "the data input", numeric=False)
    idx = np.asarray(imp.const(inputs[1], "the indices"), dtype=np.int64)
    axis = int(attrs.get("axis", 0))
    if data.ndim == 0:
        raise imp.error("expected data of at least one dimension.")
    n = data.shape[axis]
    if ((idx < -n) | (idx >= n)).any():
        raise imp.error(f"indices {idx.tolist()} are out of range for an axis of length {n}.")
    return _as_array(np.take(data, idx, axis=axis))


def _slice(imp: _Importer, node, inputs, attrs):
    data = inputs[0]
    if isinstance(data, _Feature):
        raise imp.unsupported("slicing a feature map is not supported.")
    data = imp.const(data, "the data input", numeric=False)
    if imp.opset < 10:
        starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
    else:
        starts, ends = (_ints(imp.const(_opt(inputs, i), name)) for i, name in ((1, "starts"), (2, "ends")))
        axes = _ints(imp.const(inputs[3], "axes")) if _opt(inputs, 3) is not None else None
        steps = _ints(imp.const(inputs[4], "steps")) if _opt(inputs, 4) is not None else None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise imp.error("slice step 0.")
        big = np.iinfo(np.int64).max // 2
        index[int(a)] = slice(max(min(int(s), big), -big), max(min(int(e), big), -big), int(st))
    return data[tuple(index)]


def _unsqueeze(imp: _Importer, node, inputs, attrs):
    axes = attrs.get("axes")
    if axes is None:
        axes = _ints(imp.const(_opt(inputs, 1), "the axes input"))
    x = inputs[0]
    if isinstance(x, _Feature):
        rank = x.rank + len(axes)
        if x.layout == _FLAT and sorted(int(a) % rank for a in axes) == [2, 3]:
            return _Feature(x.name, x.channels, _CANONICAL, True)
        raise imp.unsupported(f"unsqueezing a feature map at axes {list(axes)}; expected (N, C) to (N, C, 1, 1).")
    out = imp.const(x, "the data input", numeric=False)
    rank = out.ndim + len(axes)
    for a in sorted(int(a) % rank for a in axes):
        out = np.expand_dims(out, a)
    return out


def _squeeze(imp: _Importer, node, inputs, attrs):
    axes = attrs.get("axes")
    if axes is None and _opt(inputs, 1) is not None:
        axes = _ints(imp.const(inputs[1], "the axes input"))
    x = inputs[0]
    if isinstance(x, _Feature):
        if axes is not None and x.layout == _CANONICAL and x.unit and sorted(int(a) % 4 for a in axes) == [2, 3]:
            return _Feature(x.name, x.channels, _FLAT, True)
        raise imp.unsupported("squeezing a feature map; expected axes (2, 3) of a 1 x 1 map.")
    out = imp.const(x, "the data input", numeric=False)
    if axes is None:
        return out.squeeze()
    return out.squeeze(axis=tuple(int(a) % out.ndim for a in axes))


def _flatten(imp: _Importer, node, inputs, attrs):
    axis = int(attrs.get("axis", 1))
    x = inputs[0]
    if isinstance(x, _Feature):
        if x.layout == _FLAT and axis in (1, -1):
            return x
        if x.layout == _CANONICAL and x.unit and axis == 1:
            return _Feature(x.name, x.channels, _FLAT, True)
        raise imp.unsupported("flattening a feature map larger than 1 x 1; expected Flatten after global pooling.")
    out = imp.const(x, "the data input", numeric=False)
    axis %= max(out.ndim, 1)
    lead = int(np.prod(out.shape[:axis], dtype=np.int64))
    return out.reshape(lead, -1)


def _reshape(imp: _Importer, node, inputs, attrs):
    x = inputs[0]
    target = imp.const(_opt(inputs, 1), "the shape input", numeric=False).reshape(-1).tolist()
    allowzero = int(attrs.get("allowzero", 0))
    if not isinstance(x, _Feature):
        data = imp.const(x, "the data input", numeric=False)
        if any(isinstance(v, _Dim) for v in target):
            raise imp.unsupported("reshaping a constant to an image-dependent shape.")
        shape = [data.shape[i] if (v == 0 and not allowzero) else int(v) for i, v in enumerate(target)]
        return data.reshape(shape)
    current = list(x.shape())
    resolved = [current[i] if (not isinstance(v, _Dim) and v == 0 and not allowzero and i < len(current)) else v
                for i, v in enumerate(target)]
    if sum(1 for v in resolved if not isinstance(v, _Dim) and v == -1) > 1:
        raise imp.error(f"shape {target} has more than one -1.")
    if x.unit and len(resolved) in (2, 4):
        want = [1, x.channels] + [1] * (len(resolved) - 2)
        if _matches(resolved, want):
            return _Feature(x.name, x.channels, _CANONICAL if len(resolved) == 4 else _FLAT, True)
    if len(resolved) == len(current) and _matches(resolved, current):
        return x
    raise imp.unsupported(f"reshape of {x.name!r} to {target}: expected a reshape that keeps the (N, C, H, W) map.")


def _matches(resolved: list[Any], want: list[Any]) -> bool:
    """``resolved`` (with at most one -1) equals ``want`` entry by entry, -1 standing for the rest."""
    return all((not isinstance(v, _Dim) and v == -1) or v == w for v, w in zip(resolved, want))


def _transpose(imp: _Importer, node, inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm")
    if isinstance(x, _Feature):
        perm = list(range(x.rank))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(x.rank)):
            raise imp.error(f"perm {perm} is not a permutation of {x.rank} axes.")
        return _Feature(x.name, x.channels, tuple(x.layout[p] for p in perm), x.unit)
    data = imp.const(x, "the data input", numeric=False)
    return np.transpose(data, None if perm is None else [int(p) for p in perm])


def _constant(imp: _Importer, node, inputs, attrs):
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            return imp._tensor_to_array(a.t, f"the value of node {node.name!r}", numpy_helper)
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    raise imp.unsupported("expected a dense 'value' (sparse and string constants are not supported).")


def _rounding(fn: Callable[[np.ndarray], np.ndarray]):
    def convert(imp: _Importer, node, inputs, attrs):
        x = imp.const(inputs[0], "the input", numeric=False)
        if x.dtype == object:
            if fn is not np.floor:
                if any(isinstance(v, _Dim) and v.factor.denominator != 1 for v in x.reshape(-1)):
                    raise imp.unsupported("rounding up an image size is not supported.")
            return np.array([v.floor() if isinstance(v, _Dim) else fn(v) for v in x.reshape(-1)],
                            dtype=object).reshape(x.shape)
        return fn(x)

    return convert


def _fold_binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == object or b.dtype == object:
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}.get(op)
        if fn is not None:
            return fn(a, b)
        a_int = a.dtype == object and all(isinstance(v, (_Dim, int, np.integer)) for v in a.reshape(-1))
        return (np.floor_divide if a_int and b.dtype.kind in "iu" else np.true_divide)(a, b)
    with np.errstate(all="ignore"):
        if op == "Div" and a.dtype.kind in "iu" and b.dtype.kind in "iu":
            if (b == 0).any():
                raise _ShapeMath("an integer division by zero")
            return (np.trunc(a / b)).astype(np.result_type(a, b))
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.true_divide}[op](a, b)


_CONVERTERS: dict[str, Callable[..., Any]] = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "Relu": _unary("Relu"),
    "Sigmoid": _unary("Sigmoid"),
    "Tanh": _unary("Tanh"),
    "HardSwish": _unary("HardSwish"),
    "LeakyRelu": _unary("LeakyRelu", {"alpha": 0.01}),
    "HardSigmoid": _unary("HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
    "Clip": _clip,
    "Softmax": _softmax,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool("GlobalAveragePool"),
    "GlobalMaxPool": _global_pool("GlobalMaxPool"),
    "ReduceMean": _reduce("GlobalAveragePool"),
    "ReduceMax": _reduce("GlobalMaxPool"),
    "Resize": _resize,
    "Upsample": _resize,
    "Pad": _pad,
    "Add": _binary,
    "Sub": _binary,
    "Mul": _binary,
    "Div": _binary,
    "Concat": _concat,
    "Identity": _alias,
    "Dropout": _alias,
    "Cast": _cast,
    "Constant": _constant,
    "Shape": _shape,
    "Gather": _gather,
    "Slice": _slice,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Floor": _rounding(np.floor),
    "Ceil": _rounding(np.ceil),
}

#: Inputs each ONNX op needs at the least (the others default to 1).
_MIN_INPUTS = {
    "Conv": 2, "ConvTranspose": 2, "Gemm": 2, "MatMul": 2, "BatchNormalization": 5, "Add": 2, "Sub": 2, "Mul": 2,
    "Div": 2, "Gather": 2, "Reshape": 2, "Upsample": 1, "Resize": 1, "Pad": 1, "Concat": 1, "Constant": 0,
}

#: ONNX op types the importer converts (shape ops are evaluated at load time).
SUPPORTED_ONNX_OPS = tuple(sorted(_CONVERTERS))
