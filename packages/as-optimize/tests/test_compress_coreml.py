"""Core ML techniques: each compresses digits-cnn's ML program as it says (checked in the
package's weights and operations, everywhere); prediction is checked on macOS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from as_core.extras import is_installed

pytest.importorskip("torch")
if not is_installed("coremltools"):
    pytest.skip("coremltools is not installed (as-bench[coreml])", allow_module_level=True)

from as_optimize.compress._child_coreml import on_macos
from as_optimize.compress._coreml import (
    CoreMLLinearInt8,
    CoreMLPalettize,
    CoreMLPrune,
    conversion_check,
    coreml_techniques,
    package_weight_bytes,
    read_coreml_facts,
)
from as_optimize.compress._techniques import ApplyContext, ModelFacts, Technique
from as_optimize.exceptions import CompressionInputError

# What each setting is built with, and the operation it must leave in the program.
SETTINGS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "pal4-grouped": (
        CoreMLPalettize(),
        {"nbits": 4, "granularity": "per_grouped_channel"},
        "constexpr_lut_to_dense",
    ),
    "pal2-tensor": (
        CoreMLPalettize(), {"nbits": 2, "granularity": "per_tensor"}, "constexpr_lut_to_dense"
    ),
    "pal8-tensor": (
        CoreMLPalettize(), {"nbits": 8, "granularity": "per_tensor"}, "constexpr_lut_to_dense"
    ),
    "int8": (CoreMLLinearInt8(), {"granularity": "per_channel"}, "constexpr_blockwise_shift_scale"),
    "prune50": (CoreMLPrune(), {"target_sparsity": 0.5}, "constexpr_sparse_to_dense"),
    "prune75": (CoreMLPrune(), {"target_sparsity": 0.75}, "constexpr_sparse_to_dense"),
}  # fmt: skip


@pytest.fixture(scope="module")
def workload() -> Any:
    from as_bench.export import load_workload

    return load_workload("digits-cnn")


@pytest.fixture(scope="module")
def built(workload: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every setting applied once; the fp32 program under ``"fp32"``."""
    from as_optimize.compress._coreml import coreml_baseline

    root = tmp_path_factory.mktemp("coreml")
    context = ApplyContext(
        input_names=list(workload.input_names), workload=workload, work_dir=root / "work"
    )
    paths = {"fp32": coreml_baseline(workload, root / "work" / "coreml-fp32")}
    for key, (technique, knobs, _) in SETTINGS.items():
        paths[key] = technique.apply(Path("unused.onnx"), knobs, root / key / "model.onnx", context)
    return paths


def _op_types(package: Path) -> set[str]:
    import coremltools as ct  # type: ignore[import-untyped]

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    ops: set[str] = set()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)
    return ops


def test_they_are_techniques_for_the_coreml_target() -> None:
    for technique in coreml_techniques():
        assert isinstance(technique, Technique)
        assert technique.runtime == "coreml"
        assert getattr(technique, "targets", None) == ("coreml",)
        assert technique.knobs()


@pytest.mark.parametrize("key", list(SETTINGS))
def test_each_setting_writes_a_package_with_its_compression_op(
    key: str, built: dict[str, Path]
) -> None:
    path = built[key]
    assert path.suffix == ".mlpackage" and path.is_dir()
    ops = _op_types(path)
    assert SETTINGS[key][2] in ops, sorted(ops)
    assert SETTINGS[key][2] not in _op_types(built["fp32"])
    facts = read_coreml_facts(path)
    assert facts["compute_units"] == "ALL"
    assert facts["technique"] == SETTINGS[key][0].name and facts["knobs"] == SETTINGS[key][1]
    assert facts["weight_bytes"] == package_weight_bytes(path)


def test_weights_shrink_by_the_expected_ratio(built: dict[str, Path]) -> None:
    fp32 = package_weight_bytes(built["fp32"])
    ratio = {key: package_weight_bytes(built[key]) / fp32 for key in SETTINGS}
    # 4-bit indices (1/8) plus one 16-entry table per 16 channels; the small layers
    # (under coremltools' 2048-element threshold) and biases stay fp32.
    assert 0.14 <= ratio["pal4-grouped"] <= 0.19, ratio
    assert ratio["pal2-tensor"] < ratio["pal4-grouped"] < ratio["pal8-tensor"] < 0.33, ratio
    assert 0.25 <= ratio["int8"] <= 0.33, ratio  # 1 byte per weight and a scale per channel
    # Pruned weights are stored sparse: a 1-bit mask and the non-zero values.
    assert 0.5 <= ratio["prune50"] <= 0.62, ratio
    assert 0.27 <= ratio["prune75"] <= 0.4, ratio
    whole = sum(p.stat().st_size for p in built["pal4-grouped"].rglob("*") if p.is_file())
    fp32_whole = sum(p.stat().st_size for p in built["fp32"].rglob("*") if p.is_file())
    assert whole < 0.2 * fp32_whole


def test_applies_to_models_with_weights_and_says_why() -> None:
    technique = CoreMLPalettize()
    ok, why = technique.applies_to(
        ModelFacts(task="classification", has_data=True, op_types=frozenset({"Conv", "Relu"}))
    )
    assert ok and "Conv" in why
    ok, why = technique.applies_to(
        ModelFacts(task="regression", has_data=False, op_types=frozenset({"Relu", "Add"}))
    )
    assert not ok and "no convolution, linear or embedding weights" in why


def test_a_workload_that_converts_applies_and_is_converted_once(
    built: dict[str, Path], workload: Any
) -> None:
    facts = SimpleNamespace(
        task="classification", has_data=True, op_types=frozenset({"Conv"}), workload=workload
    )
    stamp = built["fp32"].stat().st_mtime_ns
    ok, why = CoreMLPrune().applies_to(facts)  # type: ignore[arg-type]
    assert ok and "prunes the weights of Conv" in why
    assert conversion_check(workload) == (True, "converts to a Core ML ML program")
    assert built["fp32"].stat().st_mtime_ns == stamp  # the run's conversion, reused


def test_a_model_coremltools_cannot_convert_is_not_applicable_with_its_error() -> None:
    from as_bench.export import load_workload

    try:
        minilm = load_workload("minilm")
    except Exception as exc:  # its weights are not cached here
        pytest.skip(f"minilm is not available: {exc}")
    facts = SimpleNamespace(
        task="embedding", has_data=False, op_types=frozenset({"MatMul"}), workload=minilm
    )
    ok, why = CoreMLLinearInt8().applies_to(facts)  # type: ignore[arg-type]
    if ok:
        pytest.skip("this coremltools converts MiniLM")
    assert why.startswith("Core ML conversion failed: coreml: converting with coremltools")
    assert "minilm" in why


def test_bad_knobs_and_settings_are_refused(built: dict[str, Path], workload: Any) -> None:
    context = ApplyContext(input_names=["pixels"], workload=workload)
    with pytest.raises(CompressionInputError, match="unknown knobs"):
        CoreMLPalettize().apply(Path("x.onnx"), {"bits": 4}, built["fp32"].parent / "m", context)
    with pytest.raises(CompressionInputError, match="nbits 3"):
        CoreMLPalettize(nbits=(3,))
    with pytest.raises(CompressionInputError, match="compute units"):
        CoreMLPrune(compute_units="GPU")
    with pytest.raises(CompressionInputError, match="needs the workload"):
        CoreMLPrune().apply(Path("x.onnx"), {}, Path("m"), ApplyContext(input_names=["x"]))


def _spec(folder: Path, artifact: Path, workload: Any) -> Path:
    inputs = workload.inputs(4)
    np.savez(folder / "eval-inputs.npz", in0=inputs[0])
    np.savez(folder / "eval-bench.npz", b1_in0=workload.inputs(1)[0], b2_in0=workload.inputs(2)[0])
    spec = {
        "runtime": "coreml",
        "artifact": str(artifact),
        "model": str(artifact),
        "workload": "digits-cnn",
        "device": "cpu",
        "input_names": list(workload.input_names),
        "eval_inputs": str(folder / "eval-inputs.npz"),
        "chunk": 2,
        "bench_inputs": str(folder / "eval-bench.npz"),
        "batch_sizes": [1, 2],
        "threads": 1,
        "measure": {"max_time_s": 0.3, "min_time_s": 0.05, "remeasure_noisy": 0},
        "outputs": str(folder / "eval-outputs.npy"),
        "result": str(folder / "eval-result.json"),
    }
    path = folder / "eval-spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _run_child(spec: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "as_optimize.compress._child_coreml", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads((spec.parent / "eval-result.json").read_text())
    return result


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML predicts on macOS")
def test_the_child_answers_unavailable_off_macos(
    built: dict[str, Path], workload: Any, tmp_path: Path
) -> None:
    result = _run_child(_spec(tmp_path, built["pal4-grouped"], workload))
    assert set(result) == {"unavailable"}
    assert "Core ML prediction needs macOS" in result["unavailable"]
    assert not (tmp_path / "eval-outputs.npy").exists()


@pytest.mark.macos
@pytest.mark.skipif(not on_macos(), reason="Core ML prediction needs macOS")
@pytest.mark.parametrize("key", ["pal4-grouped", "int8", "prune50"])
def test_the_child_predicts_close_to_fp32_torch_on_macos(
    key: str, built: dict[str, Path], workload: Any, tmp_path: Path
) -> None:
    import torch

    from as_bench.export import load_torch_model

    result = _run_child(_spec(tmp_path, built[key], workload))
    assert result["compute_units"] == "ALL"
    assert set(result["latency"]) == {"1", "2"}
    assert all(entry["median_s"] > 0 for entry in result["latency"].values())
    got = np.load(tmp_path / "eval-outputs.npy")
    with torch.no_grad():
        want = load_torch_model(workload)(torch.from_numpy(workload.inputs(4)[0])).numpy()
    assert got.shape == want.shape
    cosine = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosine.min() > (0.9 if key == "prune50" else 0.98), cosine
