"""torch-runtime techniques (compress/_torchao.py) evaluated by their child process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from as_bench.export import load_torch_model, load_workload
from as_optimize.compress._distill import make_student
from as_optimize.compress._techniques import ApplyContext, ModelFacts
from as_optimize.compress._torchao import (
    Float8Dynamic,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    TechniqueUnavailable,
    TorchHalf,
    compute_dtype,
    load_fp32,
    prepare,
    probe,
    quantized_weights,
    torch_techniques,
    weight_bytes,
)
from as_optimize.exceptions import CompressionError, CompressionInputError

pytest.importorskip("torchao")

ROWS = 48  # scoring examples: enough for a cosine, few enough to be quick


@pytest.fixture(scope="module")
def mlp() -> tuple[Any, Any, np.ndarray]:
    workload = load_workload("mlp")
    model = load_torch_model(workload)
    assert workload.dataset is not None
    x = np.array(workload.dataset.inputs[0][:ROWS])
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    return workload, model, reference


def _context(workload: Any, model: Any, tmp_path: Path) -> ApplyContext:
    return ApplyContext(
        input_names=tuple(workload.input_names),
        workload=workload,
        workload_spec=workload.name,
        torch_model=model,
        work_dir=tmp_path / "work",
    )


def _run_child(artifact: Path, workload: Any, device: str, folder: Path) -> dict[str, Any]:
    """Write a spec as the search does and run the child in a process of its own."""
    assert workload.dataset is not None
    x = np.array(workload.dataset.inputs[0][:ROWS])
    np.savez(folder / "eval-inputs.npz", in0=x)
    np.savez(folder / "eval-bench.npz", b1_in0=x[:1], b8_in0=x[:8])
    spec = {
        "runtime": "torch",
        "artifact": str(artifact),
        "model": str(artifact),
        "workload": workload.name,
        "device": device,
        "input_names": list(workload.input_names),
        "eval_inputs": str(folder / "eval-inputs.npz"),
        "chunk": 20,  # not a divisor of ROWS: the last chunk is shorter
        "bench_inputs": str(folder / "eval-bench.npz"),
        "batch_sizes": [1, 8],
        "threads": 1,
        "measure": {
            "max_time_s": 0.2,
            "min_time_s": 0.02,
            "target_rel_ci": 0.2,
            "remeasure_noisy": 0,
        },
        "outputs": str(folder / "eval-outputs.npy"),
        "result": str(folder / "eval-result.json"),
    }
    (folder / "eval-spec.json").write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "as_optimize.compress._child_torch", str(folder / "eval-spec.json")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads((folder / "eval-result.json").read_text())
    return result


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((num / den).min())


def _check_evaluated(
    result: dict[str, Any],
    folder: Path,
    reference: np.ndarray,
    facts: dict[str, Any],
    dtype: str,
    weights: str,
    device: str = "cpu",
) -> None:
    assert "unavailable" not in result
    outputs = np.load(folder / "eval-outputs.npy")
    assert outputs.dtype == np.float32 and outputs.shape == reference.shape
    assert _cosine(outputs, reference) > 0.99
    assert not np.array_equal(outputs, reference)  # it is not the fp32 model
    assert set(result["latency"]) == {"1", "8"}
    for entry in result["latency"].values():
        assert entry["median_s"] > 0 and entry["samples"] >= 1
    assert result["dtype"] == dtype and result["providers"] == [f"torch:{device}"]
    assert set(result["quantized_weights"].values()) == {weights}
    assert result["weight_bytes"] < 0.6 * 4 * facts["parameters"]


def _build(
    technique: Any, knobs: dict[str, Any], mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> tuple[Path, Path, dict[str, Any]]:
    workload, model, _ = mlp
    candidate = tmp_path / "candidates" / "c1"
    artifact = technique.apply(
        Path("unused.onnx"), knobs, candidate / "model.onnx", _context(workload, model, tmp_path)
    )
    assert artifact == candidate / "model.torch" and artifact.is_dir()
    facts: dict[str, Any] = json.loads((artifact / "technique.json").read_text())
    assert facts["technique"] == technique.name and facts["knobs"] == knobs
    assert facts["architecture"] == {"kind": "workload"}
    assert (artifact / "model.safetensors").stat().st_size > 4 * facts["parameters"]
    return candidate, artifact, facts


def test_int8_dynamic_is_built_and_evaluated_by_the_child_on_the_cpu(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, _, reference = mlp
    knobs = {"granularity": "per_row"}
    candidate, artifact, facts = _build(Int8Dynamic(), knobs, mlp, tmp_path)
    result = _run_child(artifact, workload, "cpu", candidate)
    _check_evaluated(result, candidate, reference, facts, "float32", "Int8Tensor:int8")
    assert result["runtime_options"]["technique"] == "torchao-int8-dynamic"


#: Every technique the CPU runs: its knobs, the compute dtype and how the weights are held.
CPU_CASES = pytest.mark.parametrize(
    ("technique", "knobs", "dtype", "weights"),
    [
        (Int8Dynamic(), {"granularity": "per_tensor"}, torch.float32, "Int8Tensor:int8"),
        (Int8WeightOnly(), {}, torch.float32, "Int8Tensor:int8"),
        (TorchHalf(), {"dtype": "bfloat16"}, torch.bfloat16, "Tensor:bfloat16"),
        (TorchHalf(), {"dtype": "float16"}, torch.float16, "Tensor:float16"),
    ],
    ids=["int8-dynamic-per-tensor", "int8-weight-only", "bf16", "fp16"],
)


@pytest.mark.slow
@CPU_CASES
def test_every_cpu_technique_is_evaluated_by_the_child(
    mlp: tuple[Any, Any, np.ndarray],
    tmp_path: Path,
    technique: Any,
    knobs: dict[str, Any],
    dtype: Any,
    weights: str,
) -> None:
    workload, _, reference = mlp
    candidate, artifact, facts = _build(technique, knobs, mlp, tmp_path)
    result = _run_child(artifact, workload, "cpu", candidate)
    name = str(dtype).removeprefix("torch.")  # the child reports "float32", "bfloat16"
    _check_evaluated(result, candidate, reference, facts, name, weights)


@CPU_CASES
def test_what_the_child_runs_for_each_cpu_technique(
    mlp: tuple[Any, Any, np.ndarray],
    tmp_path: Path,
    technique: Any,
    knobs: dict[str, Any],
    dtype: Any,
    weights: str,
) -> None:
    """The child's own steps in this process: rebuild, prepare, run (quick)."""
    workload, _, reference = mlp
    _, artifact, facts = _build(technique, knobs, mlp, tmp_path)
    prepared = prepare(load_fp32(artifact, "mlp"), technique.name, knobs, "cpu")
    assert compute_dtype(prepared) == dtype
    assert set(quantized_weights(prepared).values()) == {weights}
    assert weight_bytes(prepared) < 0.6 * 4 * facts["parameters"]
    assert workload.dataset is not None
    x = torch.from_numpy(np.array(workload.dataset.inputs[0][:ROWS])).to(dtype)
    with torch.inference_mode():
        outputs = prepared(x).float().numpy()
    assert _cosine(outputs, reference) > 0.99
    assert not np.array_equal(outputs, reference)


def test_int8_weight_only_stores_int8_weights_that_dequantize_to_the_fp32_ones(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, model, _ = mlp
    artifact = Int8WeightOnly().apply(
        Path("unused.onnx"), {}, tmp_path / "model.onnx", _context(workload, model, tmp_path)
    )
    quantized = prepare(load_fp32(artifact, "mlp"), "torchao-int8-weight-only", {}, "cpu")
    fp32 = dict(model.named_modules())
    linears = [(n, m) for n, m in quantized.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for name, layer in linears:
        weight: Any = layer.weight  # torchao's Int8Tensor
        qdata, scale = weight.qdata, weight.scale
        assert qdata.dtype == torch.int8 and qdata.shape == fp32[name].weight.shape
        assert int(qdata.abs().max()) == 127  # symmetric per row: the largest maps to 127
        original = fp32[name].weight.detach()
        restored = qdata.float() * scale.reshape(-1, 1).float()
        step = scale.reshape(-1, 1).float()
        assert torch.all((restored - original).abs() <= step / 2 + 1e-6)
    # Two preparations of the same folder quantize alike (the child's is reproducible).
    again = prepare(load_fp32(artifact, "mlp"), "torchao-int8-weight-only", {}, "cpu")
    assert quantized_weights(again) == quantized_weights(quantized)
    for (_, a), (_, b) in zip(
        linears,
        [(n, m) for n, m in again.named_modules() if isinstance(m, torch.nn.Linear)],
        strict=True,
    ):
        assert torch.equal(getattr(a.weight, "qdata"), getattr(b.weight, "qdata"))  # noqa: B009
    assert weight_bytes(quantized) < 0.3 * weight_bytes(model) + 4096


def test_an_unavailable_device_is_answered_unavailable(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, model, _ = mlp
    artifact = Int8WeightOnly().apply(
        Path("unused.onnx"), {}, tmp_path / "model.onnx", _context(workload, model, tmp_path)
    )
    device = "cuda"
    if torch.cuda.is_available():
        device = "mps"  # a machine with CUDA has no MPS
    result = _run_child(artifact, workload, device, tmp_path)
    assert set(result) == {"unavailable"}
    assert device.upper() in result["unavailable"]
    assert not (tmp_path / "eval-outputs.npy").exists()


@pytest.mark.parametrize(
    ("technique", "knobs"),
    [(Int4WeightOnly(), {"group_size": 32}), (Float8Dynamic(), {"granularity": "per_row"})],
    ids=["int4", "float8"],
)
def test_cuda_only_techniques_are_unavailable_on_the_cpu_with_the_reason(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path, technique: Any, knobs: dict[str, Any]
) -> None:
    assert technique.targets == ("cuda",)
    _, artifact, _ = _build(technique, knobs, mlp, tmp_path)
    with pytest.raises(TechniqueUnavailable, match=f"^{technique.name} on cpu: ") as info:
        prepare(load_fp32(artifact, "mlp"), technique.name, knobs, "cpu")
    print(f"{technique.name} on cpu: {info.value}")  # torchao's own words, for the log
    facts = ModelFacts(task="classification", has_data=True, op_types=frozenset({"Gemm"}))
    ok, why = technique.applies_to(facts)
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here; these techniques are probed on it")
    assert not ok
    if technique.name == "torchao-int4-weight-only":
        assert "no x86 CPU kernel" in why
        assert why.endswith(str(probe("torchao-int4-weight-only", "cpu")))
    else:
        assert "compute capability 8.9" in why


@pytest.mark.slow
def test_int4_on_the_cpu_is_answered_unavailable_by_the_child(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, _, _ = mlp
    candidate, artifact, _ = _build(Int4WeightOnly(), {"group_size": 32}, mlp, tmp_path)
    result = _run_child(artifact, workload, "cpu", candidate)
    assert set(result) == {"unavailable"}
    assert result["unavailable"].startswith("torchao-int4-weight-only on cpu: ")


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("technique", "knobs", "dtype"),
    [
        (Int8Dynamic(), {"granularity": "per_row"}, "float32"),
        (Int4WeightOnly(), {"group_size": 32}, "bfloat16"),
        (Float8Dynamic(), {"granularity": "per_row"}, "bfloat16"),
        (TorchHalf(), {"dtype": "float16"}, "float16"),
    ],
    ids=["int8-dynamic", "int4", "float8", "fp16"],
)
def test_cuda_techniques_are_evaluated_by_the_child_on_the_gpu(
    mlp: tuple[Any, Any, np.ndarray],
    tmp_path: Path,
    technique: Any,
    knobs: dict[str, Any],
    dtype: str,
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    workload, _, reference = mlp
    candidate, artifact, _ = _build(technique, knobs, mlp, tmp_path)
    result = _run_child(artifact, workload, "cuda", candidate)
    if "unavailable" in result:
        assert technique.name == "torchao-float8-dynamic", result
        assert "compute capability" in result["unavailable"]
        return
    outputs = np.load(candidate / "eval-outputs.npy")
    assert outputs.shape == reference.shape
    assert _cosine(outputs, reference) > 0.98
    assert result["dtype"] == dtype and result["providers"] == ["torch:cuda"]
    assert set(result["latency"]) == {"1", "8"}


def test_applicability_and_targets_say_why() -> None:
    linear = ModelFacts(task="classification", has_data=True, op_types=frozenset({"Gemm"}))
    convs = ModelFacts(task="classification", has_data=True, op_types=frozenset({"Conv"}))
    ok, why = Int8Dynamic().applies_to(convs)
    assert not ok and "nn.Linear" in why
    assert Int8Dynamic().applies_to(linear)[0]
    ok, why = TorchHalf().applies_to(convs)
    assert ok and "slower" in why
    ok, why = Float8Dynamic().applies_to(linear)
    if not torch.cuda.is_available():
        assert not ok and "compute capability 8.9" in why
    names = [t.name for t in torch_techniques()]
    assert len(set(names)) == len(names) == 5
    assert all(t.runtime == "torch" for t in torch_techniques())
    assert TorchHalf().targets == ("cpu", "cuda", "mps")
    assert Float8Dynamic().targets == ("cuda",)
    assert [k["group_size"] for k in Int4WeightOnly().knobs()] == [128, 64, 32]
    with pytest.raises(CompressionInputError, match="granularity"):
        Int8Dynamic().apply(
            Path("x.onnx"), {"granularity": "per_block"}, Path("x.onnx"), ApplyContext(("x",))
        )


def test_a_distilled_student_is_rebuilt_by_the_child(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, model, _ = mlp
    student = make_student(model, 0.5, 1.0, workload.inputs(1), seed=3)
    # As in a search's pipeline: the context's workload builds the stage's model, and the
    # evaluator gets the original workload's spec.
    stage_workload = dataclasses.replace(workload, name="mlp+distill", make_model=lambda: student)
    context = dataclasses.replace(
        _context(workload, student, tmp_path), workload=stage_workload, workload_spec="mlp"
    )
    artifact = Int8WeightOnly().apply(Path("unused.onnx"), {}, tmp_path / "model.onnx", context)
    facts = json.loads((artifact / "technique.json").read_text())
    assert facts["architecture"]["kind"] == "sequential"
    rebuilt = load_fp32(artifact, "mlp")
    x = torch.from_numpy(np.array(workload.inputs(4)[0]))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), student(x))
    prepared = prepare(rebuilt, "torchao-int8-weight-only", {}, "cpu")
    assert set(quantized_weights(prepared).values()) == {"Int8Tensor:int8"}
    with torch.inference_mode():
        assert _cosine(prepared(x).numpy(), student(x).numpy()) > 0.99


def test_a_channel_pruned_model_is_rebuilt_with_its_smaller_layers(tmp_path: Path) -> None:
    from as_optimize.compress._prune import prune_channels

    workload = load_workload("digits-cnn")
    model = load_torch_model(workload)
    pruned = prune_channels(model, 0.5, workload.inputs(1))
    artifact = Int8Dynamic().apply(
        Path("unused.onnx"),
        {"granularity": "per_row"},
        tmp_path / "model.onnx",
        _context(workload, pruned, tmp_path),
    )
    facts = json.loads((artifact / "technique.json").read_text())
    assert facts["architecture"] == {"kind": "resized"}
    rebuilt = load_fp32(artifact, "digits-cnn")
    shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    assert shapes != {k: tuple(v.shape) for k, v in model.state_dict().items()}
    x = torch.from_numpy(np.array(workload.inputs(8)[0]))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), pruned(x))
    prepared = prepare(rebuilt, "torchao-int8-dynamic", {"granularity": "per_row"}, "cpu")
    # torchao quantizes the two Linear layers; the convolutions stay fp32.
    assert quantized_weights(prepared) == {
        "classifier.1": "Int8Tensor:int8",
        "classifier.3": "Int8Tensor:int8",
    }
    assert next(prepared.features.parameters()).dtype == torch.float32


class _Custom(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


def test_a_model_the_evaluator_cannot_rebuild_is_refused_when_built(
    mlp: tuple[Any, Any, np.ndarray], tmp_path: Path
) -> None:
    workload, _, _ = mlp
    with pytest.raises(CompressionError, match="cannot rebuild this _Custom"):
        Int8WeightOnly().apply(
            Path("unused.onnx"),
            {},
            tmp_path / "model.onnx",
            _context(workload, _Custom(), tmp_path),
        )
    with pytest.raises(CompressionError, match="MultiheadAttention"):
        Int8WeightOnly().apply(
            Path("unused.onnx"),
            {},
            tmp_path / "model.onnx",
            _context(workload, torch.nn.Sequential(torch.nn.MultiheadAttention(8, 2)), tmp_path),
        )
