"""The model graph: named nodes, one input feature map, one output, plain data.

A :class:`Model` is a DAG of :class:`Node` objects in topological order.  Every
node produces one tensor named like the node.  The graph holds weights as
NumPy arrays in ONNX layout and knows nothing about Dask, Zarr or kernels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ._ops import OPS, normalize_attrs

__all__ = ["Node", "Model"]


def _freeze_weights(node: str, weights: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
    out = {}
    for key, value in weights.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise ModelError(f"Node {node!r}: weight {key!r} must be numeric. Got dtype {arr.dtype} instead.")
        if not np.all(np.isfinite(arr)):
            raise ModelError(f"Node {node!r}: weight {key!r} contains NaN or infinity.")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        arr.setflags(write=False)
        out[key] = arr
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class Node:
    """One operation of the graph.

    Parameters
    ----------
    name : str
        Unique name; also the name of the tensor the node produces.
    op : str
        An op from :data:`pipeline.model._ops.OPS`.
    inputs : tuple of str
        Names of the tensors consumed (the model input or other nodes).
    attrs : mapping
        Attributes; validated and completed with defaults on construction.
    weights : mapping of str to ndarray
        Weight arrays (stored as read-only float32).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelError(f"Expected a node name that is a non-empty string. Got {self.name!r} instead.")
        if self.op not in OPS:
            raise UnsupportedOpError(f"Node {self.name!r}: unknown op {self.op!r}; expected one of {', '.join(sorted(OPS))}.")
        spec = OPS[self.op]
        inputs = tuple(self.inputs) if not isinstance(self.inputs, str) else (self.inputs,)
        if not (spec.min_inputs <= len(inputs) <= spec.max_inputs):
            raise ModelError(
                f"Node {self.name!r} ({self.op}): expected {spec.min_inputs}"
                f"{'' if spec.min_inputs == spec.max_inputs else f' to {spec.max_inputs}'} input(s). Got {len(inputs)} instead."
            )
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "attrs", MappingProxyType(normalize_attrs(self.name, self.op, dict(self.attrs))))
        known = set(spec.required_weights) | set(spec.optional_weights)
        unknown = sorted(set(self.weights) - known)
        if unknown:
            raise ModelError(
                f"Node {self.name!r} ({self.op}): unknown weight(s) {', '.join(map(repr, unknown))}; "
                f"expected {sorted(known) or 'none'}."
            )
        missing = [w for w in spec.required_weights if w not in self.weights]
        if missing:
            raise ModelError(f"Node {self.name!r} ({self.op}): missing weight(s) {', '.join(map(repr, missing))}.")
        if self.op in ("Add", "Sub", "Mul", "Div") and (len(inputs) == 1) != ("C" in self.weights):
            raise ModelError(
                f"Node {self.name!r} ({self.op}): expected either two tensor inputs, or one input and the constant 'C'."
            )
        object.__setattr__(self, "weights", _freeze_weights(self.name, self.weights))

    def __reduce__(self):
        # mapping proxies do not pickle; rebuild (and re-validate) from plain data
        return (Node, (self.name, self.op, self.inputs, dict(self.attrs), dict(self.weights)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (weights by reference ``node/param``)."""
        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.attrs.items()}
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "attrs": attrs,
            "weights": {k: f"{self.name}/{k}" for k in self.weights},
        }


class Model:
    """A trained network as a graph of :class:`Node` objects.

    Parameters
    ----------
    nodes : iterable of Node
        The operations, in any order; they are sorted topologically.
    input_channels : int
        Channels of the input feature map.
    input_name : str, optional
        Name of the input tensor, ``"input"`` by default.
    output : str, optional
        Name of the output tensor; by default the one node nobody consumes.
    name : str, optional
        Human-readable name (used in task names and summaries).
    metadata : mapping, optional
        Free JSON-serialisable information (training data, licence, ...).

    Raises
    ------
    ModelError
        On duplicate names, dangling inputs, cycles, or weights whose shapes
        disagree with the graph.
    """

    def __init__(
        self,
        nodes: Iterable[Node],
        *,
        input_channels: int,
        input_name: str = "input",
        output: str | None = None,
        name: str = "model",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        nodes = list(nodes)
        if not nodes:
            raise ModelError(f"Model {name!r}: expected at least one node. Got none.")
        if int(input_channels) < 1:
            raise ModelError(f"Model {name!r}: expected input_channels >= 1. Got {input_channels!r} instead.")
        self.name = str(name)
        self.input_name = str(input_name)
        self.input_channels = int(input_channels)
        self.metadata = dict(metadata or {})
        by_name: dict[str, Node] = {}
        for node in nodes:
            if node.name in by_name or node.name == self.input_name:
                raise ModelError(f"Model {self.name!r}: duplicate tensor name {node.name!r}.")
            by_name[node.name] = node
        for node in nodes:
            for src in node.inputs:
                if src != self.input_name and src not in by_name:
                    raise ModelError(f"Node {node.name!r}: input {src!r} is neither the model input nor a node.")
        self.nodes: tuple[Node, ...] = tuple(_toposort(self.name, by_name, self.input_name))
        consumed = {src for node in self.nodes for src in node.inputs}
        if output is None:
            sinks = [n.name for n in self.nodes if n.name not in consumed]
            if len(sinks) != 1:
                raise ModelError(f"Model {self.name!r}: expected one output node; found {sinks}. Name it with output=.")
            output = sinks[0]
        if output not in by_name:
            raise ModelError(f"Model {self.name!r}: output {output!r} is not a node.")
        self.output = output
        # drop nodes the output does not depend on
        needed = {output}
        for node in reversed(self.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        self.nodes = tuple(n for n in self.nodes if n.name in needed)
        if self.input_name not in needed:
            raise ModelError(f"Model {self.name!r}: the output does not depend on the input {self.input_name!r}.")
        from ._shapes import infer_channels

        self.channels: dict[str, int] = infer_channels(self)

    def __reduce__(self):
        # Dask ships a model to each worker once; rebuild it there from plain parts
        return (
            _rebuild,
            (list(self.nodes), self.input_channels, self.input_name, self.output, self.name, self.metadata),
        )

    def __dask_tokenize__(self) -> str:
        return self.fingerprint

    # -- basic facts ---------------------------------------------------------
    @property
    def output_channels(self) -> int:
        return self.channels[self.output]

    @cached_property
    def node_by_name(self) -> Mapping[str, Node]:
        return MappingProxyType({n.name: n for n in self.nodes})

    @cached_property
    def consumers(self) -> Mapping[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {self.input_name: []}
        for node in self.nodes:
            out.setdefault(node.name, [])
            for src in node.inputs:
                out[src].append(node.name)
        return MappingProxyType({k: tuple(v) for k, v in out.items()})

    @property
    def num_parameters(self) -> int:
        return int(sum(w.size for n in self.nodes for w in n.weights.values()))

    @cached_property
    def is_local(self) -> bool:
        return all(OPS[n.op].local for n in self.nodes)

    @cached_property
    def geometry(self):
        """Halo, stride, output scale and locality (see :mod:`pipeline.model._geometry`)."""
        from ._geometry import compute_geometry

        return compute_geometry(self)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        from ._shapes import infer_shapes

        return infer_shapes(self, height, width)[self.output]

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of graph and weights; equal models share compiled plans."""
        h = hashlib.sha256(json.dumps(self.graph_dict(), sort_keys=True).encode())
        for node in self.nodes:
            for key in sorted(node.weights):
                arr = node.weights[key]
                h.update(f"{node.name}/{key}{arr.shape}".encode())
                h.update(arr.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (
            f"Model(name={self.name!r}, nodes={len(self.nodes)}, input_channels={self.input_channels}, "
            f"output_channels={self.output_channels}, parameters={self.num_parameters})"
        )

    # -- (de)serialisation ---------------------------------------------------
    def graph_dict(self) -> dict[str, Any]:
        """The JSON graph of the native format (weights referenced by key)."""
        return {
            "format": "pipeline.model",
            "version": 1,
            "name": self.name,
            "input": {"name": self.input_name, "channels": self.input_channels},
            "output": self.output,
            "metadata": self.metadata,
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def weight_arrays(self) -> dict[str, np.ndarray]:
        return {f"{n.name}/{k}": np.asarray(v) for n in self.nodes for k, v in n.weights.items()}

    def save(self, path) -> None:
        """Save in the native format: ``path/model.json`` and ``path/weights.npz``.

        See Also
        --------
        pipeline.load_model
        """
        from ._native import save_native

        save_native(self, path)

    def summary(self) -> str:
        """A human-readable description: ops, halo, stride, scale, parameters."""
        from collections import Counter

        geo = self.geometry
        ops = Counter(n.op for n in self.nodes)
        lines = [
            f"model       {self.name}",
            f"input       {self.input_channels} channel(s)",
            f"output      {self.output_channels} channel(s), scale {geo.scale[0]} x {geo.scale[1]}",
            f"nodes       {len(self.nodes)}: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())),
            f"parameters  {self.num_parameters:,}",
            f"local       {'yes' if geo.local else 'no (global pooling: results depend on the block size)'}",
            f"halo        top {geo.halo[0]}, left {geo.halo[1]}, bottom {geo.halo[2]}, right {geo.halo[3]} px",
            f"stride      {geo.stride[0]} x {geo.stride[1]} px (block origins are multiples of it)",
        ]
        return "\n".join(lines)


def _rebuild(nodes, input_channels, input_name, output, name, metadata) -> Model:
    return Model(nodes, input_channels=input_channels, input_name=input_name, output=output, name=name,
                 metadata=metadata)


def _toposort(model: str, by_name: Mapping[str, Node], input_name: str) -> list[Node]:
    order: list[Node] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in by_name:
        if state.get(start) == 2:
            continue
        stack = [(start, iter(by_name[start].inputs))]
        state[start] = 1
        while stack:
            name, it = stack[-1]
            advanced = False
            for src in it:
                if src == input_name:
                    continue
                if state.get(src) == 1:
                    raise ModelError(f"Model {model!r}: the graph has a cycle through node {src!r}.")
                if state.get(src) != 2:
                    state[src] = 1
                    stack.append((src, iter(by_name[src].inputs)))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[name] = 2
                order.append(by_name[name])
    return order
