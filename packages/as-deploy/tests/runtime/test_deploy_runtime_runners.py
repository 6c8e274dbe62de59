"""Model runners: ONNX Runtime (default), LiteRT and Core ML behind their extras."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient

from as_deploy.manifest import TensorSpec
from as_deploy.repository import ModelRepository
from as_deploy.runtime import (
    MissingRuntimeError,
    ModelRunner,
    RunnerError,
    create_runner,
    load_runner,
)
from as_deploy.runtime._base import require
from as_deploy.server import create_app
from as_deploy.settings import ServerSettings

LABELS = [str(i) for i in range(10)]


def test_deploy_server_onnx_runner_runs_the_manifest_names(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits_data
    model = ModelRepository(repo).load("digits-cnn")
    runner = load_runner(model)
    assert isinstance(runner, ModelRunner)
    outputs = runner.run({"input": images[:4]})
    assert set(outputs) == {"logits"} and outputs["logits"].shape == (4, 10)
    session = ort.InferenceSession(str(model.model_path))
    np.testing.assert_allclose(outputs["logits"], session.run(None, {"input": images[:4]})[0])
    runner.close()
    with pytest.raises(RunnerError, match="not loaded"):
        runner.run({"input": images[:1]})


def test_deploy_server_runner_refuses_names_the_file_does_not_have(repo: Path) -> None:
    # A manifest whose input name is not the model's: the model fails to load (409).
    version = repo / "digits-cnn" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["inputs"][0]["name"] = "pixels"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with TestClient(create_app(ServerSettings(preload=[]), repo=repo)) as client:
        response = client.post(
            "/v1/models/digits-cnn/predict", json={"inputs": {"pixels": [[[[0.0] * 8] * 8]]}}
        )
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "model_unavailable"
        assert "inputs ['pixels'] do not match the model file's ['input']" in error["message"]
        ok = client.post("/v1/models/int-sum/predict", json={"inputs": {"ids": [[1, 1, 1, 1]]}})
        assert ok.status_code == 200


def test_deploy_server_missing_runtime_names_the_extra() -> None:
    with pytest.raises(MissingRuntimeError) as caught:
        require("as_deploy_not_a_module", "tflite", "the TFLite model m/1")
    assert 'uv add "as-deploy[tflite]"' in str(caught.value)
    assert caught.value.hint.startswith('uv add "as-deploy[tflite]"')
    assert isinstance(caught.value, ImportError)
    with pytest.raises(RunnerError, match="no runner for the model format 'pickle'"):
        create_runner("pickle")


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def _digits_specs(batch: int | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
    return (
        [TensorSpec(name="input", dtype="float32", shape=[batch, 1, 8, 8])],
        [TensorSpec(name="logits", dtype="float32", shape=[batch, 10])],
    )


@pytest.fixture(scope="module")
def same_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """digits-cnn as ``.tflite`` (batch 1) and ``.onnx``, both from one model in this run.

    The artefacts are compared with each other, never with the committed model: training
    on another machine gives other weights (logits differ by up to 0.26).
    """
    if not _has("litert_torch", "ai_edge_litert", "torch", "onnxscript"):
        pytest.skip("converting to TFLite needs the tflite extra (litert-torch, ai-edge-litert)")
    from as_bench.export import convert_tflite, export_onnx, load_workload

    workload = load_workload("digits-cnn")
    work = tmp_path_factory.mktemp("same-weights")
    onnx_path, _ = export_onnx(workload, 1, work / "onnx")
    return {"tflite": convert_tflite(workload, 1, work / "tflite"), "onnx": onnx_path}


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, None], ids=["static-batch", "manifest-says-dynamic"])
def test_deploy_server_serves_a_tflite_model(
    same_weights: dict[str, Path],
    batch: int | None,
    tmp_path: Path,
    h: Any,
    repo: Path,
    digits_data: tuple[np.ndarray, np.ndarray],
) -> None:
    images, _ = digits_data
    tflite_model = same_weights["tflite"]
    inputs, outputs = _digits_specs(batch)
    manifest = h.make_manifest(
        "digits-tflite",
        "1",
        {"model.tflite": tflite_model},
        inputs,
        outputs,
        model_file="model.tflite",
        model_format="tflite",
        labels=LABELS,
    )
    ModelRepository(repo).add(manifest, {"model.tflite": tflite_model})
    # The reference is the ONNX export of the same weights, run by ONNX Runtime.
    session = ort.InferenceSession(str(same_weights["onnx"]))
    (expected,) = session.run(["logits"], {"input": images[:1]})
    with TestClient(create_app(ServerSettings(preload=[]), repo=repo)) as client:
        url = "/v1/models/digits-tflite/predict"
        if batch is None:
            # The file's reshapes are baked in for one row, whatever the manifest claims:
            # three rows fail with LiteRT's reason, and the model still serves one row.
            failed = client.post(url, json=h.digits_body(images[:3]))
            assert failed.status_code == 500
            assert failed.json()["error"]["code"] == "inference_failed"
            assert "LiteRT failed" in failed.json()["error"]["message"]
        response = client.post(url, json=h.digits_body(images[:1]))
        assert response.status_code == 200, response.text
        got = np.array(response.json()["outputs"]["logits"])
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
        predicted = [p["index"] for p in response.json()["predictions"]]
        assert predicted == list(expected.argmax(axis=1))
        if batch == 1:
            refused = client.post(url, json=h.digits_body(images[:2]))
            assert refused.status_code == 422
            assert "expected shape [1, 1, 8, 8], got [2, 1, 8, 8]" in refused.text


@pytest.mark.slow
@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction needs macOS")
def test_deploy_server_serves_a_coreml_package(
    tmp_path: Path, h: Any, repo: Path, digits_data: tuple[np.ndarray, np.ndarray]
) -> None:
    # The .mlpackage's files are listed in the manifest; its Manifest.json is the "model"
    # file, and the runner loads the package folder around it.
    from as_bench.export import convert_coreml, export_onnx, load_workload

    workload = load_workload("digits-cnn")  # both artefacts from these weights
    package = convert_coreml(workload, 1, tmp_path / "build")
    onnx_path, _ = export_onnx(workload, 1, tmp_path / "onnx")
    staged = tmp_path / "stage" / "model.mlpackage"
    shutil.copytree(package, staged)
    files = {
        path.relative_to(staged.parent).as_posix(): path
        for path in sorted(staged.rglob("*"))
        if path.is_file()
    }
    inputs, outputs = _digits_specs(1)
    manifest = h.make_manifest(
        "digits-coreml",
        "1",
        files,
        inputs,
        outputs,
        model_file="model.mlpackage/Manifest.json",
        model_format="coreml",
        labels=LABELS,
    )
    ModelRepository(repo).add(manifest, files)
    images, _ = digits_data
    session = ort.InferenceSession(str(onnx_path))
    (expected,) = session.run(["logits"], {"input": images[:1]})
    with TestClient(create_app(ServerSettings(preload=[]), repo=repo)) as client:
        response = client.post("/v1/models/digits-coreml/predict", json=h.digits_body(images[:1]))
        assert response.status_code == 200, response.text
        got = np.array(response.json()["outputs"]["logits"])
        np.testing.assert_allclose(got, expected, atol=1e-2, rtol=1e-2)
