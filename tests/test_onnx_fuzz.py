"""Malformed ONNX input: always a typed ``pipeline.errors`` error, never a crash or another type.

Seeded loops over corrupted copies of committed model files (byte flips,
truncations, random garbage, structural damage to the parsed protobuf).  A
corrupted file may still be a valid network (e.g. a flipped bit inside a
weight); then it must import to a usable Model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import pipeline
from pipeline.errors import ModelError
from pipeline.model import Model
from pipeline.model._onnx import load_onnx_bytes

MODELS = Path(__file__).parent / "models"
SMALL = MODELS / "senet_opset17.onnx"
LOCAL = MODELS / "mobilenet_opset18.onnx"


def outcome(data: bytes) -> str:
    """``"ok"`` or the error class name; any exception outside ModelError fails the test."""
    try:
        model = load_onnx_bytes(data, name="fuzz")
    except ModelError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip()
        return type(exc).__name__
    assert isinstance(model, Model)
    model.summary()
    return "ok"


@pytest.mark.parametrize("path", [SMALL, LOCAL], ids=lambda p: p.stem)
def test_byte_flips_at_many_positions(path):
    data = path.read_bytes()
    rng = np.random.default_rng(len(data))
    seen = set()
    for _ in range(150):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 4))):
            buf[pos] = int(rng.integers(0, 256))
        seen.add(outcome(bytes(buf)))
    assert seen - {"ok"}, "no corruption was ever detected"


def test_truncations():
    data = SMALL.read_bytes()
    rng = np.random.default_rng(3)
    cuts = sorted(set(rng.integers(0, len(data), size=80).tolist()) | {0, 1, 2, len(data) - 1})
    results = [outcome(data[:cut]) for cut in cuts]
    assert "ModelFormatError" in results


def test_random_garbage_and_prefixes():
    rng = np.random.default_rng(11)
    for n in (0, 1, 7, 64, 1000, 5000):
        for _ in range(5):
            outcome(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
    outcome(b"\x08" * 100)
    outcome(SMALL.read_bytes() * 2)


def _mutations(proto: onnx.ModelProto, rng: np.random.Generator):
    """Structural damage to a parsed model, one kind at a time."""
    graph = proto.graph
    i = int(rng.integers(0, len(graph.node)))
    node = graph.node[i]
    kind = int(rng.integers(0, 9))
    if kind == 0 and graph.initializer:
        del graph.initializer[int(rng.integers(0, len(graph.initializer)))]
    elif kind == 1 and node.input:
        node.input[int(rng.integers(0, len(node.input)))] = "nowhere"
    elif kind == 2 and graph.initializer:
        t = graph.initializer[int(rng.integers(0, len(graph.initializer)))]
        if t.dims:
            t.dims[0] = int(t.dims[0]) + int(rng.integers(1, 3))
    elif kind == 3:
        node.op_type = ["FooOp", "Conv", "Relu", "Gemm", "Resize", "Reshape"][int(rng.integers(0, 6))]
    elif kind == 4 and node.attribute:
        a = node.attribute[int(rng.integers(0, len(node.attribute)))]
        if a.ints:
            a.ints[0] = int(rng.integers(-3, 5))
        else:
            a.i = int(rng.integers(-3, 5))
    elif kind == 5 and len(graph.node) > 1:
        j = int(rng.integers(0, len(graph.node)))
        if graph.node[j].output:
            node.input.append(graph.node[j].output[0])
    elif kind == 6:
        node.output[0] = graph.input[0].name
    elif kind == 7:
        del graph.output[:]
    elif kind == 8:
        graph.input[0].type.tensor_type.shape.dim[int(rng.integers(0, 4))].dim_value = int(rng.integers(0, 4))


@pytest.mark.parametrize("path", [SMALL, LOCAL], ids=lambda p: p.stem)
def test_structural_damage(path):
    rng = np.random.default_rng(5)
    original = onnx.load(str(path))
    kinds = set()
    for _ in range(120):
        proto = onnx.ModelProto()
        proto.CopyFrom(original)
        _mutations(proto, rng)
        kinds.add(outcome(proto.SerializeToString()))
    assert {"ModelError", "ModelFormatError", "UnsupportedOpError"} & kinds


def test_cycle_made_by_rewiring():
    proto = onnx.load(str(SMALL))
    first, last = proto.graph.node[0], proto.graph.node[-1]
    first.input[0] = last.output[0]
    with pytest.raises(ModelError, match="cycle"):
        load_onnx_bytes(proto.SerializeToString())


def test_load_model_on_corrupt_file_leaves_it_untouched(tmp_path):
    data = bytearray(SMALL.read_bytes())
    data[len(data) // 3: len(data) // 3 + 40] = b"\xff" * 40
    path = tmp_path / "broken.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="broken.onnx"):
        pipeline.load_model(path)
    assert path.read_bytes() == bytes(data)
