"""add_onnx_model: an ONNX file made by another tool stored as a version, parity checked.

The files are real: the digits CNN exported by as-bench, one copy with its classifier
scrambled (a broken "optimized" model), and one with its weights in an external file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_deploy import ModelRepository, ParityError, ServerSettings
from as_deploy.export import Tolerances, add_onnx_model

pytestmark = pytest.mark.slow

EMBEDDED = (
    Path(__file__).resolve().parents[2] / "src" / "as_deploy" / "_default_model" / "digits-cnn"
)
OPTIMIZATION = {"tool": "test", "technique": "none", "knobs": {"level": 1}, "figures": [1.5, 2]}


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxscript")
    from as_bench.export import export_onnx
    from as_bench.workloads import get_workload

    path, dynamic = export_onnx(get_workload("digits-cnn"), 2, tmp_path_factory.mktemp("export"))
    assert dynamic
    return path


@pytest.fixture(scope="module")
def added(digits_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    repo = tmp_path_factory.mktemp("repo")
    result = add_onnx_model(
        digits_onnx,
        "digits-cnn",
        repo,
        name="digits",
        version="7",
        optimization=OPTIMIZATION,
        extra_tool_versions={"some-optimizer": "1.2.3"},
    )
    return repo, result


def test_the_version_is_described_as_an_export_of_its_source(added: tuple[Path, Any]) -> None:
    repo, result = added
    loaded = ModelRepository(repo).load("digits", "7")  # every sha256 verified
    manifest = loaded.manifest
    assert manifest == result.manifest
    # as-bench's exporter keeps the weights in model.onnx.data, beside the graph.
    assert {(f.path, f.role) for f in manifest.files} == {
        ("model.onnx", "model"),
        ("model.onnx.data", "weights"),
    }
    exported = json.loads((EMBEDDED / "1" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest.labels == exported["labels"]
    assert manifest.preprocessing == exported["preprocessing"]
    assert [spec.model_dump(mode="json") for spec in manifest.inputs] == exported["inputs"]
    assert [spec.model_dump(mode="json") for spec in manifest.outputs] == exported["outputs"]
    assert manifest.runtime_options["dynamic_batch"] is True
    assert manifest.runtime_options["opset"] >= 18


def test_parity_with_pytorch_is_recorded_as_an_export_records_it(added: tuple[Path, Any]) -> None:
    manifest = added[1].manifest
    parity = manifest.parity
    assert parity.ran and parity.passed
    assert parity.runtime == "onnxruntime" and parity.reference == "torch"
    assert parity.inputs_checked == 360  # the digits' held-out 20%
    assert parity.max_abs_error < 1e-4 and parity.top1_agreement == 1.0
    assert parity.atol == 1e-4 and parity.min_top1_agreement == 0.99


def test_the_optimization_is_in_the_provenance_and_the_model_metadata(
    added: tuple[Path, Any],
) -> None:
    from fastapi.testclient import TestClient

    from as_deploy.server import create_app

    repo, _ = added
    provenance = ModelRepository(repo).load("digits", "7").manifest.provenance
    assert provenance.optimization == OPTIMIZATION
    assert provenance.source == "digits-cnn"
    assert provenance.tool_versions["some-optimizer"] == "1.2.3"
    assert "onnxruntime" in provenance.tool_versions
    with TestClient(create_app(ServerSettings(), repo=repo)) as client:
        info = client.get("/v1/models/digits").json()
        assert info["provenance"]["optimization"] == OPTIMIZATION


def test_a_manifest_without_optimization_does_not_write_the_field() -> None:
    raw = json.loads((EMBEDDED / "1" / "manifest.json").read_text(encoding="utf-8"))
    from as_deploy.manifest import parse_manifest

    manifest = parse_manifest(raw)
    assert manifest.provenance.optimization is None
    assert "optimization" not in json.loads(manifest.to_json())["provenance"]


def _scrambled(source: Path, target: Path) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    last = [node for node in model.graph.node if node.op_type == "Gemm"][-1]
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == last.input[1]:
            rotated = np.roll(numpy_helper.to_array(tensor), 1, axis=0)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(rotated, tensor.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def test_a_model_that_disagrees_with_pytorch_is_refused_and_nothing_written(
    digits_onnx: Path, tmp_path: Path
) -> None:
    broken = _scrambled(digits_onnx, tmp_path / "broken" / "model.onnx")
    repo = tmp_path / "repo"
    loose = Tolerances(atol=100.0, rtol=0.0, min_top1_agreement=0.9)
    with pytest.raises(ParityError) as info:
        add_onnx_model(broken, "digits-cnn", repo, name="digits", version="1", tolerances=loose)
    assert "top-1 agreement" in str(info.value)
    assert ModelRepository(repo).list_models() == []


def test_external_weights_are_stored_beside_the_model_and_verified(
    digits_onnx: Path, tmp_path: Path
) -> None:
    import onnx

    folder = tmp_path / "external"
    folder.mkdir()
    model = onnx.load(str(digits_onnx))
    onnx.save_model(
        model,
        str(folder / "net.onnx"),
        save_as_external_data=True,
        location="net.weights",
        size_threshold=1024,
    )
    repo = tmp_path / "repo"
    result = add_onnx_model(folder / "net.onnx", "digits-cnn", repo, name="digits", version="1")
    files = {(f.path, f.role) for f in result.manifest.files}
    assert files == {("model.onnx", "model"), ("net.weights", "weights")}
    loaded = ModelRepository(repo).load("digits", "1")
    assert (loaded.directory / "net.weights").stat().st_size > 100_000
