"""``--target``: what each target measures, the child chosen by a technique's runtime,
candidates a child cannot run (not measured), and targets whose hardware is missing."""

from __future__ import annotations

import copy
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from as_optimize.cli import main
from as_optimize.compress import (
    RUNTIMES,
    ApplyContext,
    ModelFacts,
    SearchOptions,
    SearchReport,
    plan_target,
    run_search,
)
from as_optimize.exceptions import CompressionInputError

FACTORY_MODULE = "as_optimize_test_targets_factory"

FACTORY = """
import torch


def make_mlp():
    torch.manual_seed(0)
    layers = [torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)]
    return torch.nn.Sequential(*layers).eval(), (torch.randn(4, 32),)
"""

#: A torch evaluator following the child contract: the workload rebuilt from the spec's
#: ``workload``, the candidate's state dict loaded from ``artifact``, run on ``device``.
TORCH_CHILD = """
import json, sys, time
import numpy as np
import torch
import as_bench
from as_bench.export import load_torch_model, load_workload

spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
assert spec["runtime"] == "torch", spec["runtime"]
started = time.perf_counter()
model = load_torch_model(load_workload(spec["workload"]))
model.load_state_dict(torch.load(spec["artifact"]))
model.to(spec["device"])
opened = time.perf_counter() - started
with np.load(spec["eval_inputs"]) as data, torch.no_grad():
    out = model(torch.from_numpy(data["in0"]).to(spec["device"])).cpu().numpy()
np.save(spec["outputs"], out.astype(np.float32))
latency = {}
with np.load(spec["bench_inputs"]) as bench, torch.no_grad():
    for batch in spec["batch_sizes"]:
        x = torch.from_numpy(bench[f"b{batch}_in0"])
        m = as_bench.measure(model, x, options=as_bench.MeasureOptions(**spec["measure"]))
        s = m.latency.stats
        latency[str(batch)] = {
            "median_s": s.median, "ci_low_s": s.ci_low, "ci_high_s": s.ci_high,
            "iqr_s": s.iqr, "samples": s.n, "converged": m.converged, "warnings": [],
        }
result = {"session_open_s": opened, "latency": latency, "seen": spec}
open(spec["result"], "w", encoding="utf-8").write(json.dumps(result))
"""

UNAVAILABLE_CHILD = """
import json, sys
spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
open(spec["result"], "w", encoding="utf-8").write(
    json.dumps({"unavailable": "no such accelerator on this machine"})
)
"""


@dataclass
class TorchStateDict:
    """A torch-runtime technique: the fp32 model's state dict, evaluated by a torch child."""

    name: str = "torch-state-dict"
    runtime: str = "torch"
    targets: tuple[str, ...] = ("cpu",)
    description: str = "the fp32 weights saved with torch.save"
    when_it_pays: str = "never (a test technique)"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        return True, "every model"

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        return True, "kept"

    def knobs(self) -> list[dict[str, Any]]:
        return [{}]

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        import torch

        assert context.torch_model is not None and context.workload_spec == FACTORY_MODULE + (
            ":make_mlp"
        )
        path = output.with_name("model.pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(copy.deepcopy(context.torch_model).state_dict(), path)
        return path


@dataclass
class FolderArtifact:
    """A technique of another runtime whose artifact is a folder (as a Core ML package)."""

    name: str = "folder-artifact"
    runtime: str = "coreml"
    targets: tuple[str, ...] = ("coreml",)
    description: str = "writes a folder of two files"
    when_it_pays: str = "never (a test technique)"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        return True, "every model"

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        return True, "kept"

    def knobs(self) -> list[dict[str, Any]]:
        return [{"bytes": 3000}]

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        package = output.with_name("model.fakepackage")
        (package / "weights").mkdir(parents=True)
        (package / "weights" / "weight.bin").write_bytes(b"\0" * int(knobs["bytes"]))
        (package / "manifest.json").write_text("{}", encoding="utf-8")
        return package


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The factory module importable here and in child processes."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / f"{FACTORY_MODULE}.py").write_text(FACTORY, encoding="utf-8")
    (hooks / "as_optimize_test_torch_child.py").write_text(TORCH_CHILD, encoding="utf-8")
    (hooks / "as_optimize_test_unavailable_child.py").write_text(
        UNAVAILABLE_CHILD, encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(hooks))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(hooks) + (os.pathsep + path if path else ""))
    return f"{FACTORY_MODULE}:make_mlp"


def _quick(**overrides: Any) -> SearchOptions:
    values: dict[str, Any] = {
        "max_time_s": 0.05,
        "min_time_s": 0.01,
        "threads": 1,
        "stages": [],
    }
    values.update(overrides)
    return SearchOptions(**values)


def _by_id(report: SearchReport) -> dict[str, Any]:
    return {c.id: c for c in report.candidates}


def test_each_target_measures_its_runtimes_on_its_device() -> None:
    cpu = plan_target("cpu")
    assert cpu.runtimes == ("onnxruntime", "torch") and cpu.reference == "onnx"
    assert cpu.reference_name == "fp32 ONNX"
    cuda = plan_target("cuda", cuda_available=lambda: True, ort_providers=lambda: ())
    assert (cuda.device, cuda.runtimes, cuda.reference) == ("cuda", ("torch",), "eager")
    assert "CUDAExecutionProvider" in cuda.notes[0]
    with_ep = plan_target(
        "cuda",
        cuda_available=lambda: True,
        ort_providers=lambda: ("CUDAExecutionProvider", "CPUExecutionProvider"),
    )
    assert with_ep.runtimes == ("torch", "onnxruntime") and not with_ep.notes
    mps = plan_target("mps", system="Darwin", mps_available=lambda: True)
    assert (mps.device, mps.runtimes, mps.reference_name) == (
        "mps",
        ("torch",),
        "eager torch fp32 (mps)",
    )
    assert plan_target("tflite").runtimes == ("litert",)
    mac = plan_target("coreml", system="Darwin")
    assert mac.measured and mac.runtimes == ("coreml",)
    linux = plan_target("coreml", system="Linux")
    assert not linux.measured and linux.why_not_measured == "Core ML prediction needs macOS"


def test_a_target_whose_hardware_is_missing_says_what_is_missing() -> None:
    with pytest.raises(CompressionInputError, match=r"torch.cuda.is_available\(\) is False"):
        plan_target("cuda", cuda_available=lambda: False)
    with pytest.raises(CompressionInputError, match=r"needs macOS .* runs Linux"):
        plan_target("mps", system="Linux")
    with pytest.raises(CompressionInputError, match=r"mps.is_available\(\) is False"):
        plan_target("mps", system="Darwin", mps_available=lambda: False)
    with pytest.raises(CompressionInputError, match="runs Windows"):
        plan_target("coreml", system="Windows")
    with pytest.raises(CompressionInputError, match="'tpu' is not one of cpu, cuda"):
        plan_target("tpu")


@pytest.mark.skipif(
    platform.system() == "Darwin", reason="the CUDA refusal is checked where there is no GPU"
)
def test_the_command_refuses_cuda_without_a_gpu_and_unknown_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mlp", "--target", "cuda"])
    assert exit_info.value.code == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mlp", "--technique", "ort-int3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ort-int3" in err and "ort-fp16" in err


def test_stage_options_are_checked_before_the_search(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mlp", "--stage", "fold-batchnorm", "-o", str(output)])
    assert exit_info.value.code == 2
    assert "--stage fold-batchnorm: not among the available ones" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mlp", "--stage", "x", "--no-stages", "-o", str(output)])
    assert exit_info.value.code == 2
    assert "--no-stages and --stage contradict" in capsys.readouterr().err
    assert not output.exists()


def test_a_techniques_runtime_picks_the_child_that_evaluates_it(
    factory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNTIMES, "torch", "as_optimize_test_torch_child")
    report = run_search(
        factory,
        tmp_path / "out",
        options=_quick(techniques=[TorchStateDict(), FolderArtifact()]),
    )
    found = _by_id(report)
    torch_candidate = found["torch-state-dict"]
    # Evaluated by the torch child: the same weights give the fp32 outputs back.
    assert torch_candidate.status == "passed", torch_candidate.reason
    assert torch_candidate.runtime == "torch"
    assert torch_candidate.quality is not None
    assert torch_candidate.quality.mean_cosine > 0.9999
    assert torch_candidate.path == "candidates/torch-state-dict/model.pt"
    artifact = tmp_path / "out" / torch_candidate.path
    assert torch_candidate.size_bytes == artifact.stat().st_size
    # A Core ML technique is not tried on the cpu target, and the report says why.
    coreml = found["folder-artifact"]
    assert coreml.status == "not applicable"
    assert coreml.reason == "made for --target coreml, not cpu"
    assert report.runtimes == ["onnxruntime", "torch"] and report.reference == "fp32 ONNX"


def test_a_candidate_its_child_cannot_run_is_kept_as_not_measured(
    factory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNTIMES, "torch", "as_optimize_test_unavailable_child")
    report = run_search(factory, tmp_path / "out", options=_quick(techniques=[TorchStateDict()]))
    candidate = _by_id(report)["torch-state-dict"]
    assert candidate.status == "not measured"
    assert candidate.reason == "no such accelerator on this machine"
    assert candidate.size_bytes and candidate.size_bytes > 1000
    assert candidate.latency == {} and candidate.quality is None
    assert report.winner == "fp32" and candidate.id not in report.pareto


def test_a_runtime_without_an_evaluator_is_not_tried(
    factory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNTIMES, "torch", "as_optimize_no_such_module")
    report = run_search(factory, tmp_path / "out", options=_quick(techniques=[TorchStateDict()]))
    candidate = _by_id(report)["torch-state-dict"]
    assert candidate.status == "not applicable"
    assert "as_optimize_no_such_module" in candidate.reason
    assert "is not installed" in candidate.reason


@pytest.mark.skipif(platform.system() != "Linux", reason="Core ML off macOS is checked on Linux")
def test_coreml_on_linux_builds_and_sizes_candidates_and_eager_is_the_reference(
    factory: str, tmp_path: Path
) -> None:
    report = run_search(
        factory,
        tmp_path / "out",
        options=_quick(target="coreml", techniques=[TorchStateDict(), FolderArtifact()]),
    )
    found = _by_id(report)
    package = found["folder-artifact-3000"]
    assert package.status == "not measured"
    assert package.reason == "Core ML prediction needs macOS"
    # The folder's files: 3000 bytes of weights and a 2-byte manifest.
    assert package.size_bytes == 3002
    assert found["torch-state-dict"].status == "not applicable"
    assert found["torch-state-dict"].reason == "made for --target cpu, not coreml"
    assert report.baseline.id == "eager" and report.baseline.runtime == "torch"
    assert report.reference == "eager torch fp32 (cpu)" and report.device == "cpu"
    assert report.baseline.speedup_vs_fp32_onnx is None
    # The eager reference wins with no file of its own: nothing in winner/.
    assert report.winner == "eager" and report.winner_path == ""
    assert "; 1 candidate(s) were not measured (Core ML prediction needs macOS)" in (
        report.winner_reason
    )
    assert not (tmp_path / "out" / "winner").exists()
    stored = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert stored["target_notes"] == ["candidates are not measured: Core ML prediction needs macOS"]


def test_optimize_keeps_only_the_techniques_and_stages_named(factory: str, tmp_path: Path) -> None:
    from as_optimize.compress import optimize

    result = optimize(
        factory,
        output=tmp_path / "out",
        technique_names=["ort-fp16"],
        stage_names=(),
        max_time_s=0.05,
        threads=1,
    )
    assert [c.id for c in result.report.candidates] == ["ort-fp16-io32"]
    assert result.winner_file is not None and result.winner_file.is_file()
