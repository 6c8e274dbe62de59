"""The embedded default model: loads verified, labels 0..9, classifies held-out digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import as_deploy
from as_deploy import ModelRepository

EMBEDDED = Path(as_deploy.__file__).resolve().parent / "_default_model"


def test_embedded_model_loads_with_verified_files_and_digit_labels() -> None:
    model = ModelRepository(EMBEDDED).load("digits-cnn")  # checks every sha256 and size
    manifest = model.manifest
    assert (manifest.name, manifest.version, manifest.format) == ("digits-cnn", "1", "onnx")
    assert manifest.labels == [str(digit) for digit in range(10)]
    assert [entry.path for entry in manifest.files] == ["model.onnx"]
    assert model.model_path.name == "model.onnx"
    assert model.model_path.stat().st_size < 1_000_000  # one small self-contained file
    assert manifest.inputs[0].shape == [None, 1, 8, 8]
    assert manifest.outputs[0].shape == [None, 10]
    assert manifest.runtime_options["dynamic_batch"] is True
    assert manifest.preprocessing["scale"] == 1 / 16
    parity = manifest.parity
    assert parity is not None and parity.passed and parity.status == "checked"
    assert parity.inputs_checked == 360
    assert not list(EMBEDDED.rglob("*.data"))  # no external weights beside it


@pytest.mark.slow
def test_embedded_model_classifies_held_out_digits() -> None:
    ort = pytest.importorskip("onnxruntime")
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    _, x_test, _, y_test = model_selection.train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    model = ModelRepository(EMBEDDED).load("digits-cnn")
    session = ort.InferenceSession(str(model.model_path), providers=["CPUExecutionProvider"])
    (name,) = [node.name for node in session.get_inputs()]
    assert name == model.manifest.inputs[0].name
    (logits,) = session.run(None, {name: x_test})
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    assert len(y_test) == 360
    assert accuracy >= 0.95
    (one,) = session.run(None, {name: x_test[:1]})  # the batch axis is dynamic
    assert one.shape == (1, 10)
