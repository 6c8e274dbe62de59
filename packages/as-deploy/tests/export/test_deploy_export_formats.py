"""Export of the digits CNN to ONNX (through the CLI), TFLite and Core ML (fp32 and fp16).

One export per format per session (module fixtures); each is loaded back through the
repository (every sha256 checked) and described as its runtime reports it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_deploy import ModelRepository, VersionExistsError
from as_deploy.cli import main

pytestmark = pytest.mark.slow

DIGITS = [str(digit) for digit in range(10)]


def _run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("repo")


@pytest.fixture(scope="module")
def onnx_export(repo: Path) -> Any:
    pytest.importorskip("onnxscript")
    code = _run_cli(
        ["export", "digits-cnn", "--format", "onnx", "--repo", str(repo), "--name", "digits"]
    )
    assert code == 0
    return ModelRepository(repo).load("digits", "1")


@pytest.fixture(scope="module")
def tflite_export(repo: Path) -> Any:
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from as_deploy.export import ExportOptions, export_to_repository

    options = ExportOptions(format="tflite", parity_inputs=64)
    return export_to_repository("digits-cnn", options, repo, name="digits-tflite", version="1")


def _coreml(repo: Path, precision: str) -> Any:
    pytest.importorskip("coremltools")
    from as_deploy.export import ExportOptions, export_to_repository

    options = ExportOptions.parse(format="coreml", precision=precision, compute_units="CPU_ONLY")
    return export_to_repository(
        "digits-cnn", options, repo, name=f"digits-coreml-{precision}", version="1"
    )


@pytest.fixture(scope="module")
def coreml_fp32(repo: Path) -> Any:
    return _coreml(repo, "fp32")


@pytest.fixture(scope="module")
def coreml_fp16(repo: Path) -> Any:
    return _coreml(repo, "fp16")


def test_cli_onnx_export_is_loadable_with_dynamic_batch_and_parity(onnx_export: Any) -> None:
    manifest = onnx_export.manifest
    assert manifest.format == "onnx"
    assert [entry.path for entry in manifest.files] == ["model.onnx"]
    assert manifest.labels == DIGITS
    assert manifest.inputs[0].name == "input"
    assert manifest.inputs[0].dtype == "float32"
    assert manifest.inputs[0].shape == [None, 1, 8, 8]
    assert manifest.outputs[0].shape == [None, 10]
    assert manifest.runtime_options["opset"] == 18
    assert manifest.runtime_options["dynamic_batch"] is True
    assert manifest.provenance.source == "digits-cnn"
    for tool in ("torch", "onnx", "onnxruntime", "as-bench", "as-deploy"):
        assert tool in manifest.provenance.tool_versions
    parity = manifest.parity
    assert parity is not None and parity.passed and parity.runtime == "onnxruntime"
    assert parity.inputs_checked == 32
    assert parity.max_abs_error is not None and parity.max_abs_error <= parity.atol
    assert parity.top1_agreement == 1.0
    assert "held out" in (parity.data or "")


def test_onnx_file_runs_any_batch_in_onnxruntime(onnx_export: Any) -> None:
    import onnxruntime as ort  # type: ignore[import-untyped]

    session = ort.InferenceSession(str(onnx_export.model_path))
    for batch in (1, 5):
        x = np.random.default_rng(batch).random((batch, 1, 8, 8), dtype=np.float32)
        (logits,) = session.run(None, {"input": x})
        assert logits.shape == (batch, 10)


def test_cli_export_twice_fails_and_keeps_the_first(repo: Path, onnx_export: Any) -> None:
    before = (onnx_export.directory / "manifest.json").read_bytes()
    code = _run_cli(["export", "digits-cnn", "--repo", str(repo), "--name", "digits"])
    assert code == 1
    from as_deploy.export import export_to_repository

    with pytest.raises(VersionExistsError, match="digits/1 already exists"):
        export_to_repository("digits-cnn", "onnx", repo, name="digits", version="1")
    assert (onnx_export.directory / "manifest.json").read_bytes() == before
    assert ModelRepository(repo).load("digits", "1").manifest == onnx_export.manifest


def test_tflite_export_has_a_fixed_batch_and_passes_parity(repo: Path, tflite_export: Any) -> None:
    manifest = tflite_export.manifest
    assert manifest.format == "tflite"
    assert [entry.path for entry in manifest.files] == ["model.tflite"]
    assert manifest.inputs[0].shape == [1, 1, 8, 8]  # litert-torch bakes the batch in
    assert manifest.outputs[0].shape == [1, 10]
    assert manifest.runtime_options["batch_size"] == 1
    assert manifest.runtime_options["tensor_names"] == {"input": "args_0", "logits": "output_0"}
    assert manifest.labels == DIGITS
    parity = manifest.parity
    assert parity is not None and parity.passed and parity.runtime == "ai-edge-litert"
    assert parity.inputs_checked == 64
    assert "litert-torch" in manifest.provenance.tool_versions
    loaded = ModelRepository(repo).load("digits-tflite")
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

    interpreter = Interpreter(model_path=str(loaded.model_path))
    runner = interpreter.get_signature_runner(manifest.runtime_options["signature"])
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    out = runner(**{manifest.runtime_options["tensor_names"]["input"]: x})
    assert out[manifest.runtime_options["tensor_names"]["logits"]].shape == (1, 10)


def _check_coreml(repo: Path, result: Any, precision: str) -> None:
    manifest = result.manifest
    assert manifest.format == "coreml"
    paths = [entry.path for entry in manifest.files]
    assert "model.mlpackage/Manifest.json" in paths
    assert all(path.startswith("model.mlpackage/") for path in paths)
    assert manifest.model_file.path == "model.mlpackage/Manifest.json"
    roles = {entry.path: entry.role for entry in manifest.files}
    assert "weights" in roles.values()
    options = manifest.runtime_options
    assert options["precision"] == precision
    assert options["compute_units"] == "CPU_ONLY"
    assert options["package"] == "model.mlpackage"
    assert manifest.inputs[0].shape == [1, 1, 8, 8]
    assert manifest.inputs[0].dtype == "float32"  # float32 at the interface, even for fp16
    assert manifest.outputs[0].shape == [1, 10]
    assert manifest.labels == DIGITS
    loaded = ModelRepository(repo).load(manifest.name)
    package = loaded.model_path.parent
    assert package == loaded.directory / options["package"]
    import coremltools as ct  # type: ignore[import-untyped]

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    assert [item.name for item in spec.description.input] == ["input"]
    parity = manifest.parity
    assert parity is not None and parity.runtime == "coreml"
    if sys.platform != "darwin":
        assert parity.status == "not_run"
        assert parity.reason == "Core ML prediction needs macOS"
        assert parity.passed is None and parity.max_abs_error is None


def test_coreml_fp32_is_converted_and_described(repo: Path, coreml_fp32: Any) -> None:
    _check_coreml(repo, coreml_fp32, "fp32")
    assert coreml_fp32.manifest.parity.atol == 1e-3


def test_coreml_fp16_is_converted_with_looser_tolerances(
    repo: Path, coreml_fp16: Any, coreml_fp32: Any
) -> None:
    _check_coreml(repo, coreml_fp16, "fp16")
    parity = coreml_fp16.manifest.parity
    assert parity.atol == 5e-2
    assert parity.min_top1_agreement == 0.98

    def weight_bytes(result: Any) -> int:
        return sum(e.size_bytes for e in result.manifest.files if e.role == "weights")

    assert weight_bytes(coreml_fp16) < 0.6 * weight_bytes(coreml_fp32)  # stored as fp16


@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction needs macOS")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_coreml_parity_runs_on_macos(repo: Path, precision: str, request: Any) -> None:
    result = request.getfixturevalue(f"coreml_{precision}")
    parity = result.manifest.parity
    assert parity.status == "checked"
    assert parity.passed is True
    assert parity.inputs_checked == 32
    assert parity.top1_agreement >= parity.min_top1_agreement
