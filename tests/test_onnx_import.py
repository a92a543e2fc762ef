"""ONNX import of hand-built graphs: every conversion checked against onnxruntime.

Each case builds a small ONNX model with ``onnx.helper``, writes it to disk,
imports it with ``pipeline.load_model`` and compares ``run_model`` on the
whole image with onnxruntime running the same file.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import pipeline
from pipeline.errors import ModelError, ModelFormatError, UnsupportedOpError
from pipeline.model import run_model

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(7)


def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def build(nodes, inits, *, cin=3, opset=17, out="y", name="g", metadata=None, extra_inputs=(), out_shape=None):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "H", "W"]), *extra_inputs],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 7
    if metadata:
        helper.set_model_props(proto, metadata)
    return proto


def save(tmp_path, proto, stem="m"):
    path = tmp_path / f"{stem}.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def check(tmp_path, proto, *, cin=3, size=(13, 17)):
    """Import ``proto``; whole-image output equals onnxruntime; returns the Model."""
    path = save(tmp_path, proto)
    model = pipeline.load_model(path)
    image = RNG.standard_normal((cin, *size)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"x": image[None]})
    actual = run_model(model, image)
    assert actual.shape == expected[0].shape
    np.testing.assert_allclose(actual, expected[0], atol=1e-4 * max(1.0, float(np.abs(expected).max())), rtol=0)
    return model


# ---------------------------------------------------------------- convolutions
@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad(tmp_path, auto_pad):
    attrs = dict(strides=[2, 2], kernel_shape=[4, 3], auto_pad=auto_pad)
    if auto_pad == "NOTSET":
        attrs.update(pads=[1, 0, 2, 1], dilations=[1, 2])
    proto = build([helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", **attrs)],
                  {"W": rand(4, 3, 4, 3), "B": rand(4)})
    check(tmp_path, proto)


def test_grouped_conv_then_conv_transpose_with_output_padding(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["a"], name="dw", group=3, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("ConvTranspose", ["a", "W2", "B2"], ["y"], name="up", group=3, kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    ]
    proto = build(nodes, {"W1": rand(6, 1, 3, 3), "W2": rand(6, 2, 3, 3), "B2": rand(6)})
    model = check(tmp_path, proto, size=(12, 16))
    assert [n.op for n in model.nodes] == ["Conv", "ConvTranspose"]


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_transpose_same_padding_becomes_pads(tmp_path, auto_pad):
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up", kernel_shape=[4, 3], strides=[2, 2],
                            auto_pad=auto_pad)
    model = check(tmp_path, build([node], {"W": rand(3, 2, 4, 3)}), size=(9, 11))
    assert isinstance(model.nodes[0].attrs["pads"], tuple)


def test_conv_transpose_output_shape_is_unsupported(tmp_path):
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up_fixed", kernel_shape=[2, 2], strides=[2, 2],
                            output_shape=[20, 20])
    with pytest.raises(UnsupportedOpError, match="up_fixed.*output_shape"):
        pipeline.load_model(save(tmp_path, build([node], {"W": rand(3, 2, 2, 2)})))


# ---------------------------------------------------------------- batch norm
def bn_inputs(prefix, c):
    return {f"{prefix}_s": 0.5 + RNG.random(c).astype(np.float32), f"{prefix}_b": rand(c),
            f"{prefix}_m": rand(c), f"{prefix}_v": 0.5 + RNG.random(c).astype(np.float32)}


def test_batchnorm_folds_into_sole_consumer_conv(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"], name="bn",
                              epsilon=1e-3)]
    model = check(tmp_path, build(nodes, {"W": rand(4, 3, 3, 3), **bn_inputs("bn", 4)}))
    assert [n.op for n in model.nodes] == ["Conv"]


def test_batchnorm_stays_when_conv_output_has_another_consumer(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["n"], name="bn"),
             helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "b2_s", "b2_b", "b2_m", "b2_v"], ["r2"], name="bn_after_relu"),
             helper.make_node("Add", ["n", "c"], ["s"], name="add"),
             helper.make_node("Concat", ["s", "r2"], ["y"], name="cat", axis=1)]
    model = check(tmp_path, build(nodes, {"W": rand(3, 3, 1, 1), **bn_inputs("bn", 3), **bn_inputs("b2", 3)}))
    assert sum(n.op == "BatchNorm" for n in model.nodes) == 2


# ---------------------------------------------------------------- activations, softmax, pools
def test_activations_and_clip_forms(tmp_path):
    nodes = [helper.make_node("LeakyRelu", ["x"], ["a"], name="lrelu", alpha=0.2),
             helper.make_node("HardSigmoid", ["a"], ["b"], name="hsig", alpha=0.3, beta=0.4),
             helper.make_node("Tanh", ["x"], ["c"], name="tanh"),
             helper.make_node("HardSwish", ["c"], ["d"], name="hswish"),
             helper.make_node("Clip", ["x", "lo", ""], ["e"], name="clip_min_only"),
             helper.make_node("Sigmoid", ["e"], ["f"], name="sig"),
             helper.make_node("Concat", ["b", "d", "f"], ["y"], name="cat", axis=-3)]
    check(tmp_path, build(nodes, {"lo": np.float32(-0.3)}))


def test_clip_attributes_before_opset_11(tmp_path):
    nodes = [helper.make_node("Clip", ["x"], ["y"], name="relu6", min=0.0, max=0.6)]
    model = check(tmp_path, build(nodes, {}, opset=10))
    assert dict(model.nodes[0].attrs) == {"min": 0.0, "max": pytest.approx(0.6)}


@pytest.mark.parametrize("opset,axis", [(13, 1), (13, -3), (11, 1), (17, None)])
def test_softmax_over_channels(tmp_path, opset, axis):
    if axis is None:  # opset >= 13 default is the last axis: softmax over channels after NHWC transpose
        nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                 helper.make_node("Softmax", ["t"], ["s"], name="sm"),
                 helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2])]
    elif opset < 13:  # flattening semantics: channel-only when the spatial size is 1 x 1
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                 helper.make_node("Softmax", ["g"], ["s"], name="sm", axis=axis),
                 helper.make_node("Mul", ["x", "s"], ["y"])]
    else:
        nodes = [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=axis)]
    check(tmp_path, build(nodes, {}, opset=opset))


@pytest.mark.parametrize("opset,axis", [(13, 2), (13, -1), (11, 1)])
def test_softmax_not_over_channels_is_unsupported(tmp_path, opset, axis):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="bad_softmax", axis=axis)]
    with pytest.raises(UnsupportedOpError, match="bad_softmax"):
        pipeline.load_model(save(tmp_path, build(nodes, {}, opset=opset)))


@pytest.mark.parametrize("include", [0, 1])
def test_pools(tmp_path, include):
    nodes = [helper.make_node("AveragePool", ["x"], ["a"], name="avg", kernel_shape=[3, 2], strides=[1, 2],
                              pads=[1, 0, 1, 1], count_include_pad=include),
             helper.make_node("MaxPool", ["a"], ["b"], name="max", kernel_shape=[2, 2], strides=[2, 1],
                              pads=[0, 1, 1, 0], dilations=[1, 2]),
             helper.make_node("MaxPool", ["b"], ["y"], name="max_ceil_s1", kernel_shape=[3, 3], ceil_mode=1,
                              pads=[1, 1, 1, 1])]
    check(tmp_path, build(nodes, {}), size=(15, 18))


def test_maxpool_ceil_mode_with_stride_is_unsupported(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool_ceil", kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1)]
    with pytest.raises(UnsupportedOpError, match="pool_ceil.*ceil_mode"):
        pipeline.load_model(save(tmp_path, build(nodes, {})))


def test_global_pools_and_reduce_mean(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[2, 3], keepdims=1),
             helper.make_node("GlobalMaxPool", ["x"], ["g"], name="gmax"),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Div", ["d", "g"], ["y"])]
    model = check(tmp_path, build(nodes, {}, opset=13))
    assert not model.geometry.local


def test_se_head_with_gemm_and_matmul(tmp_path):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W1", "B1"], ["h"], name="fc1", transB=1, alpha=0.7, beta=1.3),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["z"], name="fc2"),
             helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("Unsqueeze", ["s", "axes"], ["u"]),
             helper.make_node("Mul", ["x", "u"], ["y"])]
    model = check(tmp_path, build(nodes, {"W1": rand(5, 3), "B1": rand(5), "W2": rand(5, 3),
                                          "axes": np.array([2, 3], dtype=np.int64)}))
    assert [n.op for n in model.nodes].count("Dense") == 2


def test_matmul_over_channels_last(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMul", ["t", "W"], ["m"], name="pointwise"),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Transpose", ["a"], ["y"], perm=[0, 3, 1, 2])]
    model = check(tmp_path, build(nodes, {"W": rand(3, 4), "b": rand(4)}))
    assert [n.op for n in model.nodes] == ["Dense", "Add"]


# ---------------------------------------------------------------- resize, pad
@pytest.mark.parametrize("mode,ctm,nearest", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", "floor"),
    ("linear", "align_corners", "floor"), ("linear", "pytorch_half_pixel", "floor"), ("linear", "asymmetric", "floor")])
def test_resize_scales(tmp_path, mode, ctm, nearest):
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode=mode,
                              coordinate_transformation_mode=ctm, nearest_mode=nearest)]
    check(tmp_path, build(nodes, {"scales": np.array([1, 1, 2, 3], dtype=np.float32)}))


def test_resize_sizes_from_shape_chain(tmp_path):
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "s0", "s2"], ["nc"]),
             helper.make_node("Gather", ["shape", "i2"], ["h"], axis=0),
             helper.make_node("Gather", ["shape", "i3"], ["w"], axis=0),
             helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["hf", "three"], ["h3f"]),
             helper.make_node("Floor", ["h3f"], ["h3ff"]),
             helper.make_node("Cast", ["h3ff"], ["h3"], to=TensorProto.INT64),
             helper.make_node("Mul", ["w", "two"], ["w2"]),
             helper.make_node("Unsqueeze", ["h3", "ax0"], ["h3u"]),
             helper.make_node("Unsqueeze", ["w2", "ax0"], ["w2u"]),
             helper.make_node("Concat", ["nc", "h3u", "w2u"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="up", mode="linear")]
    inits = {"s0": i64(0), "s2": i64(2), "i2": i64(2)[0], "i3": i64(3)[0], "three": np.float32(3.0),
             "two": i64(2)[0], "ax0": i64(0)}
    model = check(tmp_path, build(nodes, inits))
    assert [n.op for n in model.nodes] == ["Resize"] and model.nodes[0].attrs["scales"] == (3.0, 2.0)


def test_resize_to_fixed_sizes_is_unsupported(tmp_path):
    nodes = [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="fixed_size", mode="nearest")]
    proto = build(nodes, {"sizes": np.array([1, 3, 32, 32], dtype=np.int64)})
    with pytest.raises(UnsupportedOpError, match="fixed_size"):
        pipeline.load_model(save(tmp_path, proto))


@pytest.mark.parametrize("op,opset", [("Upsample", 9), ("Resize", 10)])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_and_resize_before_opset_11(tmp_path, op, opset, mode):
    nodes = [helper.make_node(op, ["x", "scales"], ["y"], name="up", mode=mode)]
    check(tmp_path, build(nodes, {"scales": np.array([1, 1, 2, 3], dtype=np.float32)}, opset=opset))


def test_pad_constant_and_elementwise_constants(tmp_path):
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["p"], name="pad", mode="constant"),
             helper.make_node("Add", ["p", "c1"], ["a"]),           # (1, C, 1, 1)
             helper.make_node("Sub", ["c2", "a"], ["b"]),           # (C, 1, 1), reversed
             helper.make_node("Mul", ["b", "c3"], ["c"]),           # scalar
             helper.make_node("Div", ["c4", "c"], ["d"]),           # (C,)-like (1, C, 1, 1) reversed
             helper.make_node("Identity", ["d"], ["e"]),
             helper.make_node("Dropout", ["e"], ["f"]),
             helper.make_node("Cast", ["f"], ["y"], to=TensorProto.FLOAT)]
    inits = {"pads": np.array([0, 0, 1, 2, 0, 0, 3, 0], dtype=np.int64), "value": np.float32(0.25),
             "c1": rand(1, 3, 1, 1), "c2": rand(3, 1, 1), "c3": np.float32(1.7),
             "c4": (2 + RNG.random((1, 3, 1, 1))).astype(np.float32)}
    model = check(tmp_path, build(nodes, inits))
    assert [n.op for n in model.nodes] == ["Pad", "Add", "Sub", "Mul", "Div"]
    assert model.nodes[2].attrs["reverse"] and not model.nodes[1].attrs["reverse"]


@pytest.mark.parametrize("pads,mode", [([1, 0, 0, 0, 0, 0, 0, 0], "constant"), ([0, 0, 1, 1, 0, 0, 1, 1], "reflect")])
def test_pad_not_spatial_or_not_constant_is_unsupported(tmp_path, pads, mode):
    nodes = [helper.make_node("Pad", ["x", "pads"], ["y"], name="odd_pad", mode=mode)]
    with pytest.raises(UnsupportedOpError, match="odd_pad"):
        pipeline.load_model(save(tmp_path, build(nodes, {"pads": np.array(pads, dtype=np.int64)})))


def test_reshape_to_own_shape_is_a_no_op(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Reshape", ["r", "s"], ["q"]),
             helper.make_node("Reshape", ["q", "keep"], ["y"])]
    model = check(tmp_path, build(nodes, {"keep": np.array([0, 3, 0, -1], dtype=np.int64)}))
    assert [n.op for n in model.nodes] == ["Relu"]


def test_reshape_that_moves_data_is_unsupported(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="scramble")]
    with pytest.raises(UnsupportedOpError, match="scramble"):
        pipeline.load_model(save(tmp_path, build(nodes, {"shape": np.array([1, 3, -1, 4], dtype=np.int64)})))


# ---------------------------------------------------------------- names, metadata, graph checks
def test_name_and_metadata(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    model = pipeline.load_model(save(tmp_path, build([node], {}, name="", metadata={"licence": "CC0"}), stem="my_net"))
    assert model.name == "my_net" and model.metadata["licence"] == "CC0"
    named = pipeline.load_model(save(tmp_path, build([node], {}, name="cells"), stem="other"))
    assert named.name == "cells"


def test_unsupported_ops_are_all_listed_with_node_names(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Erf", ["a"], ["b"], name="erf_1"),
             helper.make_node("Erf", ["b"], ["c"], name="erf_2"),
             helper.make_node("LRN", ["c"], ["y"], name="lrn_layer", size=3)]
    with pytest.raises(UnsupportedOpError) as info:
        pipeline.load_model(save(tmp_path, build(nodes, {})))
    message = str(info.value)
    assert "Erf" in message and "'erf_1'" in message and "'erf_2'" in message
    assert "LRN" in message and "'lrn_layer'" in message
    assert "\n" not in message


def test_missing_initializer(tmp_path):
    node = helper.make_node("Conv", ["x", "W_missing"], ["y"], name="conv", kernel_shape=[1, 1])
    with pytest.raises(ModelError, match="W_missing"):
        pipeline.load_model(save(tmp_path, build([node], {})))


def test_wrong_rank_weights(tmp_path):
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv_3d")
    with pytest.raises(ModelError, match="conv_3d"):
        pipeline.load_model(save(tmp_path, build([node], {"W": rand(4, 3, 3)})))


def test_weights_disagreeing_with_channels(tmp_path):
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv_c")
    with pytest.raises(ModelError, match="conv_c"):
        pipeline.load_model(save(tmp_path, build([node], {"W": rand(4, 5, 3, 3)})))


def test_cycle(tmp_path):
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second"),
             helper.make_node("Relu", ["b"], ["y"], name="out")]
    with pytest.raises(ModelError, match="cycle"):
        pipeline.load_model(save(tmp_path, build(nodes, {})))


def test_two_outputs_or_inputs_or_unknown_channels(tmp_path):
    relu = helper.make_node("Relu", ["x"], ["y"])
    two_out = build([relu, helper.make_node("Sigmoid", ["x"], ["z"])], {})
    two_out.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    with pytest.raises(ModelError, match="one output"):
        pipeline.load_model(save(tmp_path, two_out))
    two_in = build([helper.make_node("Add", ["x", "x2"], ["y"])], {},
                   extra_inputs=[helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 3, "H", "W"])])
    with pytest.raises(ModelError, match="one graph input"):
        pipeline.load_model(save(tmp_path, two_in))
    unknown_c = build([relu], {})
    unknown_c.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "C"
    with pytest.raises(ModelError, match="channels"):
        pipeline.load_model(save(tmp_path, unknown_c))


def test_truncated_file_and_not_onnx(tmp_path):
    node = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3])
    data = build([node], {"W": rand(4, 3, 3, 3)}).SerializeToString()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="cut.onnx"):
        pipeline.load_model(bad)
    text = tmp_path / "text.onnx"
    text.write_text("this is not a network")
    with pytest.raises(ModelFormatError):
        pipeline.load_model(text)


def test_opset_out_of_range(tmp_path):
    proto = build([helper.make_node("Relu", ["x"], ["y"])], {}, opset=17)
    proto.opset_import[0].version = 99
    with pytest.raises(UnsupportedOpError, match="opset"):
        pipeline.load_model(save(tmp_path, proto))


@pytest.mark.parametrize("opset", [11, 13, 16, 18, 21])
def test_opsets_11_to_21(tmp_path, opset):
    """One graph spelled as each opset spells it (axes as attributes or inputs, Pad and Clip inputs)."""
    axes_input = opset >= 13
    reduce_axes_input = opset >= 18
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["n"], name="bn"),
        helper.make_node("Clip", ["n", "zero", "six"], ["r"], name="relu6"),
        helper.make_node("Pad", ["r", "pads", "padval"], ["p"], name="pad", mode="constant"),
        helper.make_node("AveragePool", ["p"], ["a"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["a", "roi", "scales"], ["u"], name="up", mode="linear",
                         coordinate_transformation_mode="align_corners"),
        helper.make_node("ReduceMean", ["u", "axes"] if reduce_axes_input else ["u"], ["m"], name="mean", keepdims=0,
                         **({} if reduce_axes_input else {"axes": [2, 3]})),
        helper.make_node("Unsqueeze", ["m", "uaxes"] if axes_input else ["m"], ["mu"],
                         **({} if axes_input else {"axes": [2, 3]})),
        helper.make_node("Sub", ["u", "mu"], ["y"], name="centre"),
    ]
    inits = {"W": rand(4, 3, 3, 3), "B": rand(4), **bn_inputs("bn", 4), "zero": np.float32(0), "six": np.float32(6),
             "pads": np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=np.int64), "padval": np.float32(-1.0),
             "roi": np.array([], dtype=np.float32), "scales": np.array([1, 1, 2, 2], dtype=np.float32),
             "uaxes": np.array([2, 3], dtype=np.int64)}
    if reduce_axes_input:
        inits["axes"] = np.array([2, 3], dtype=np.int64)
    model = check(tmp_path, build(nodes, inits, opset=opset), size=(13, 17))
    assert [n.op for n in model.nodes] == ["Conv", "Clip", "Pad", "AveragePool", "Resize", "GlobalAveragePool", "Sub"]
