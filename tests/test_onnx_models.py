"""Networks exported from PyTorch (tests/models/*.onnx) against onnxruntime.

The ``.onnx`` files are written by ``tests/models/make_models.py`` (torch is
needed only to regenerate them).  onnxruntime runs each file on the whole
image and is the independent reference; ``pipeline.predict`` must reproduce it
on every chunking, chunks smaller than the halo and image borders included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.model import run_model

ort = pytest.importorskip("onnxruntime")

MODELS = Path(__file__).parent / "models"
FILES = sorted(MODELS.glob("*.onnx"))
LOCAL = [f for f in FILES if not f.name.startswith("senet")]
TOL = 1e-4


def onnxruntime_output(path: Path, image_chw: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: image_chw[None].astype(np.float32)})
    return out[0]


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-6)
    err = float(np.abs(actual - expected).max()) / scale
    assert err <= TOL, f"max relative error {err:.2e}"


def test_committed_models_are_small_and_present():
    names = {f.name for f in FILES}
    for stem in ("unet", "dilated_resnet", "mobilenet", "senet"):
        assert sum(n.startswith(stem + "_opset") for n in names) >= 2, stem
    assert all(f.stat().st_size < 500_000 for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_whole_image_equals_onnxruntime(path):
    model = pipeline.load_model(path)
    stride = model.geometry.stride
    rng = np.random.default_rng(1)
    h, w = 5 * stride[0] * (8 // stride[0] or 1), 7 * stride[1] * (8 // stride[1] or 1)
    image = rng.standard_normal((model.input_channels, h, w)).astype(np.float32)
    assert_close(run_model(model, image), onnxruntime_output(path, image))


@pytest.mark.parametrize("path", LOCAL, ids=lambda p: p.stem)
def test_predict_on_random_chunkings_equals_onnxruntime(path):
    model = pipeline.load_model(path)
    assert model.geometry.local
    rng = np.random.default_rng(len(path.name))
    sy, sx = model.geometry.stride
    h, w = 8 * sy * max(1, 8 // sy) + (0 if sy > 2 else 3), 6 * sx * max(1, 8 // sx) + (0 if sx > 2 else 5)
    image = rng.standard_normal((model.input_channels, h, w)).astype(np.float32)
    expected = onnxruntime_output(path, image)
    halo = model.geometry.depth
    # a chunk smaller than the halo, a random one, and a non-square one
    choices = [(max(sy, halo[0] // 2), max(sx, halo[1] // 2)),
               (int(rng.integers(sy, h)), int(rng.integers(sx, w))),
               (int(rng.integers(1, h)), w // 2 + 1)]
    for chunks in choices:
        if model.input_channels == 1:
            out = pipeline.predict(image[0], model, chunks=chunks)
        else:
            out = pipeline.predict(image, model, channel_axis=0, chunks=chunks)
        assert out.numblocks[-1] >= 1
        assert_close(np.asarray(out.compute()), expected)


@pytest.mark.parametrize("path", [f for f in FILES if f not in LOCAL], ids=lambda p: p.stem)
def test_non_local_model_in_one_block_equals_onnxruntime(path):
    model = pipeline.load_model(path)
    assert not model.geometry.local
    rng = np.random.default_rng(2)
    image = rng.standard_normal((model.input_channels, 45, 38)).astype(np.float32)
    with pytest.warns(UserWarning, match="not local"):
        out = pipeline.predict(image[0], model, chunks=(45, 38))
    assert_close(np.asarray(out.compute()), onnxruntime_output(path, image))


def test_unet_structure():
    model = pipeline.load_model(MODELS / "unet_opset17.onnx")
    ops = [n.op for n in model.nodes]
    assert "BatchNorm" not in ops  # every BatchNorm follows a conv with no other consumer: folded
    assert ops.count("MaxPool") == 3 and ops.count("ConvTranspose") == 1 and ops.count("Concat") == 3
    assert ops[-1] == "Softmax"
    resizes = [n.attrs for n in model.nodes if n.op == "Resize"]
    assert {(a["mode"], a["scales"]) for a in resizes} == {("nearest", (2.0, 2.0)), ("linear", (2.0, 2.0))}
    linear = next(a for a in resizes if a["mode"] == "linear")
    assert linear["coordinate_transformation_mode"] == "half_pixel"  # scales derived from a Shape chain
    assert model.input_channels == 1 and model.output_channels == 3
    assert model.name == "unet"
    assert model.metadata["architecture"] == "UNet"


def test_mobilenet_structure():
    model = pipeline.load_model(MODELS / "mobilenet_opset18.onnx")
    assert any(n.op == "Conv" and n.attrs["groups"] > 1 and n.attrs["stride"] == (2, 2) for n in model.nodes)
    modes = sorted(n.attrs["coordinate_transformation_mode"] for n in model.nodes if n.op == "Resize")
    assert modes == ["align_corners", "half_pixel"]
    ops = {n.op for n in model.nodes}
    assert {"HardSwish", "HardSigmoid", "Clip"} <= ops
    assert model.geometry.scale == (1, 1)


def test_dilated_resnet_structure():
    model = pipeline.load_model(MODELS / "dilated_resnet_opset11.onnx")
    assert {n.attrs["dilation"] for n in model.nodes if n.op == "Conv"} == {(1, 1), (2, 2), (4, 4)}
    pools = [n.attrs["count_include_pad"] for n in model.nodes if n.op == "AveragePool" and n.attrs["pads"] != (0, 0, 0, 0)]
    assert sorted(pools) == [False, True]
    assert tuple(model.geometry.scale) == (0.5, 0.5)


def test_senet_structure():
    model = pipeline.load_model(MODELS / "senet_opset17.onnx")
    ops = [n.op for n in model.nodes]
    assert ops.count("Dense") == 2
    assert ops.count("GlobalAveragePool") == 2  # GlobalAveragePool and ReduceMean over (2, 3)
    assert "GlobalMaxPool" in ops


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_summary_works(path):
    text = pipeline.load_model(path).summary()
    assert path.stem.split("_opset")[0] in text


def test_unet_summary_names_halo_stride_and_scale():
    model = pipeline.load_model(MODELS / "unet_opset11.onnx")
    text = model.summary()
    geo = model.geometry
    assert f"top {geo.halo[0]}, left {geo.halo[1]}" in text and "halo" in text
    assert f"stride      {geo.stride[0]} x {geo.stride[1]}" in text
    assert "scale 1 x 1" in text
    assert geo.stride == (8, 8)
