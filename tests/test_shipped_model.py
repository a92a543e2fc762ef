"""The shipped nuclei U-Net: held-out Dice >= 0.90, through onnxruntime and through pipeline.predict.

The test image comes from a seed used neither for training (1000..) nor for
the evaluation in the training log (9001..); torch is not needed.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import pipeline
from pipeline.synthetic import nuclei

MODEL = Path(__file__).resolve().parents[1] / "data" / "models" / "nuclei-unet.onnx"
CARD = MODEL.with_name("MODEL_CARD.md")
FOREGROUND = 1
TEST_SEED = 4242
SIZE = 1024


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2.0 * np.logical_and(pred, truth).sum() / (pred.sum() + truth.sum()))


@pytest.fixture(scope="module")
def held_out():
    image, labels = dask.compute(*nuclei((SIZE, SIZE), seed=TEST_SEED, chunks=512))
    lo, hi = np.percentile(image, (1, 99.8))  # over the WHOLE image, as the model card says
    normalised = ((image - lo) / (hi - lo)).astype(np.float32)
    return normalised, labels > 0


@pytest.fixture(scope="module")
def ort_probs(held_out):
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: held_out[0][None, None]})[0][0]


def test_model_file_contract():
    model = onnx.load(str(MODEL))
    onnx.checker.check_model(model)
    assert MODEL.stat().st_size < 2 * 1024 * 1024
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
    ops = {node.op_type for node in model.graph.node}
    assert ops <= {"Conv", "BatchNormalization", "Relu", "MaxPool", "ConvTranspose", "Resize", "Concat", "Softmax"}
    props = {p.key: p.value for p in model.metadata_props}
    assert props["pipeline.normalize"] == "percentile:1:99.8"
    assert props["pipeline.foreground_channel"] == str(FOREGROUND)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, 1]
    assert dims[2].dim_param and dims[3].dim_param  # dynamic H and W


def test_model_card_names_normalisation_and_foreground():
    card = CARD.read_text()
    assert "percentile:1:99.8" in card
    assert "channel 1" in card.lower()


def test_dynamic_height_and_width():
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 96, 160), dtype=np.float32)
    (probs,) = session.run(None, {session.get_inputs()[0].name: x})
    assert probs.shape == (1, 2, 96, 160)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_held_out_dice_with_onnxruntime(held_out, ort_probs):
    assert _dice(ort_probs[FOREGROUND] > 0.5, held_out[1]) >= 0.90


def test_held_out_dice_through_pipeline_predict(held_out, ort_probs):
    model = pipeline.load_model(str(MODEL))
    probs = pipeline.predict(held_out[0], model, chunks=256).compute()
    assert probs.shape == (2, SIZE, SIZE)
    np.testing.assert_allclose(probs, ort_probs, atol=1e-4)
    assert _dice(probs[FOREGROUND] > 0.5, held_out[1]) >= 0.90
