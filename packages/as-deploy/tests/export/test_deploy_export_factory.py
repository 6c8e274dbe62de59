"""Exports from a ``pkg.module:factory`` source, and parity failures that write nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from as_deploy import ModelRepository
from as_deploy.cli import main
from as_deploy.exceptions import ParityError, UsageError
from as_deploy.export import ExportOptions

pytestmark = [pytest.mark.slow]

FACTORY = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, exported_offset=0.0):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        self.exported_offset = exported_offset

    def forward(self, x):
        y = self.body(x)
        # A model whose exported graph differs from eager PyTorch: torch.export (which the
        # ONNX and TFLite exporters use) takes the other branch.
        if self.exported_offset and torch.compiler.is_exporting():
            return y + self.exported_offset
        return y


def example():
    return torch.randn(8, 6, generator=torch.Generator().manual_seed(1))


def build():
    return Net().eval(), example()


def build_diverging():
    return Net(exported_offset=0.5).eval(), example()
"""


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    pytest.importorskip("onnxscript")
    module = f"asd_factory_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def test_factory_source_exports_with_derived_name(tmp_path: Path, factory: str) -> None:
    from as_deploy.export import default_name, export_to_repository

    name = default_name(f"{factory}:build")
    assert name == f"{factory}-build"
    repo = tmp_path / "repo"
    options = ExportOptions.parse(format="onnx", labels=["a", "b", "c"], description="three scores")
    result = export_to_repository(f"{factory}:build", options, repo, name=name, version="0.1")
    manifest = ModelRepository(repo).load(name).manifest
    assert manifest == result.manifest
    assert manifest.labels == ["a", "b", "c"]
    assert manifest.description == "three scores"
    assert manifest.preprocessing == {}
    assert manifest.inputs[0].name == "x"  # forward()'s parameter name
    assert manifest.inputs[0].shape == [None, 6]
    assert manifest.outputs[0].shape == [None, 3]
    assert manifest.provenance.source == f"{factory}:build"
    parity = manifest.parity
    assert parity is not None and parity.passed
    assert parity.top1_agreement is None  # a factory module's task is regression
    assert parity.inputs_checked == 32


def test_labels_must_match_the_class_count(tmp_path: Path, factory: str) -> None:
    from as_deploy.export import export_to_repository

    with pytest.raises(UsageError, match="2 labels for an output of 3 classes"):
        export_to_repository(
            f"{factory}:build", ExportOptions(labels=("a", "b")), tmp_path / "repo",
            name="m", version="1",
        )  # fmt: skip
    assert not (tmp_path / "repo" / "m").exists()


def test_parity_failure_raises_with_figures_and_writes_nothing(
    tmp_path: Path, factory: str
) -> None:
    from as_deploy.export import export_model, export_to_repository

    repo = tmp_path / "repo"
    with pytest.raises(ParityError) as info:
        export_to_repository(f"{factory}:build_diverging", "onnx", repo, name="m", version="1")
    error = info.value
    assert error.format == "onnx"
    assert error.max_abs_error == pytest.approx(0.5, abs=1e-4)
    assert error.inputs_checked == 32
    assert error.report is not None and error.report.passed is False
    assert "max abs error 0.5" in str(error)
    assert not (repo / "m").exists()
    assert not repo.exists() or not any(repo.iterdir())
    out = tmp_path / "out"
    with pytest.raises(ParityError):
        export_model(f"{factory}:build_diverging", "onnx", out)
    assert not out.exists() or not any(out.iterdir())


def test_cli_parity_failure_exits_1_with_the_figures(
    tmp_path: Path, factory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(SystemExit) as info:
        main(["export", f"{factory}:build_diverging", "--repo", str(repo), "--name", "m"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "parity check failed" in err
    assert "max abs error 0.5" in err
    assert "nothing was written" in err
    assert not (repo / "m").exists()


def test_tflite_parity_failure_is_caught_too(tmp_path: Path, factory: str) -> None:
    pytest.importorskip("litert_torch")
    from as_deploy.export import export_to_repository

    with pytest.raises(ParityError, match="tflite parity check failed"):
        export_to_repository(
            f"{factory}:build_diverging", "tflite", tmp_path / "repo", name="m", version="1"
        )
    assert not (tmp_path / "repo" / "m").exists()


def test_zero_tolerance_fails_on_fp32_rounding(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from as_deploy.export import export_to_repository

    with pytest.raises(ParityError) as info:
        export_to_repository(
            "digits-cnn",
            ExportOptions(atol=0.0, rtol=0.0),
            tmp_path / "repo",
            name="d",
            version="1",
        )
    assert info.value.atol == 0.0
    assert 0 < info.value.max_abs_error < 1e-3  # rounding, not a wrong model
    assert info.value.top1_agreement == 1.0
    assert not (tmp_path / "repo" / "d").exists()
