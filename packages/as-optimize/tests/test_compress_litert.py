"""LiteRT techniques: digits-cnn and mlp converted fp32, dynamic-range int8 and full int8,
checked for size and, through the evaluator's child process, against the fp32 torch model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_core.extras import first_missing

pytest.importorskip("torch")
_MISSING = first_missing(["litert_torch", "ai_edge_litert"])
if _MISSING is not None:
    pytest.skip(f"{_MISSING} is not installed (as-bench[tflite])", allow_module_level=True)

from as_optimize.compress._litert import (  # noqa: E402
    LiteRTDynamicInt8,
    LiteRTFp32,
    LiteRTInt8,
    litert_techniques,
)
from as_optimize.compress._techniques import ApplyContext, ModelFacts, Technique  # noqa: E402
from as_optimize.exceptions import CompressionError, CompressionInputError  # noqa: E402

# One worker converts the models once for the whole file (the module fixture).
pytestmark = pytest.mark.xdist_group("compress-litert")

CALIBRATION = 32  # the first examples of the held-out split calibrate; the rest score
SCORED = 64

TECHNIQUES: dict[str, tuple[Any, dict[str, Any]]] = {
    "fp32": (LiteRTFp32(), {}),
    "dynamic": (LiteRTDynamicInt8(), {"per_channel": True}),
    "int8": (LiteRTInt8(), {"per_channel": True, "size": CALIBRATION}),
}


class Built:
    """A workload, its context, its fp32 torch model and the candidates built from it."""

    def __init__(self, name: str, root: Path) -> None:
        from as_bench.export import load_torch_model, load_workload

        self.workload = load_workload(name)
        self.torch_model = load_torch_model(self.workload)
        dataset = self.workload.dataset
        assert dataset is not None, f"{name} has no data set"
        data = dataset.inputs[0].astype(np.float32)
        self.scoring = data[CALIBRATION : CALIBRATION + SCORED]
        self.context = ApplyContext(
            input_names=list(self.workload.input_names),
            calibration=(data[:CALIBRATION],),
            workload=self.workload,
            work_dir=root / "work",
        )
        self.paths = {
            key: technique.apply(
                Path("unused.onnx"), knobs, root / key / "model.onnx", self.context
            )
            for key, (technique, knobs) in TECHNIQUES.items()
        }

    def torch_outputs(self) -> Any:
        import torch

        with torch.no_grad():
            return self.torch_model(torch.from_numpy(self.scoring)).numpy()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    return {name: Built(name, tmp_path_factory.mktemp(name)) for name in ("digits-cnn", "mlp")}


def _evaluate(path: Path, scoring: Any, workload: Any, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Run the LiteRT evaluator as the search does: a child process with a JSON spec."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "eval-inputs.npz", in0=scoring)
    np.savez(folder / "eval-bench.npz", b1_in0=workload.inputs(1)[0], b4_in0=workload.inputs(4)[0])
    spec = {
        "runtime": "litert",
        "artifact": str(path),
        "model": str(path),
        "workload": workload.name,
        "device": "cpu",
        "input_names": list(workload.input_names),
        "eval_inputs": str(folder / "eval-inputs.npz"),
        "chunk": 16,
        "bench_inputs": str(folder / "eval-bench.npz"),
        "batch_sizes": [1, 4],
        "threads": 1,
        "measure": {"max_time_s": 0.2, "min_time_s": 0.05, "remeasure_noisy": 0},
        "outputs": str(folder / "eval-outputs.npy"),
        "result": str(folder / "eval-result.json"),
    }
    spec_path = folder / "eval-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "as_optimize.compress._child_litert",
            str(folder / "eval-spec.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((folder / "eval-result.json").read_text(encoding="utf-8"))
    return np.load(folder / "eval-outputs.npy"), result


def _cosine(a: Any, b: Any) -> Any:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_they_are_techniques_for_the_tflite_target() -> None:
    for technique in litert_techniques():
        assert isinstance(technique, Technique)
        assert technique.runtime == "litert"
        assert getattr(technique, "targets", None) == ("tflite",)


@pytest.mark.parametrize("name", ["digits-cnn", "mlp"])
def test_int8_files_are_about_four_times_smaller(name: str, built: dict[str, Built]) -> None:
    paths = built[name].paths
    assert all(p.suffix == ".tflite" and p.is_file() for p in paths.values())
    fp32 = paths["fp32"].stat().st_size
    for key in ("dynamic", "int8"):
        ratio = paths[key].stat().st_size / fp32
        assert 0.2 <= ratio <= 0.36, (key, ratio)


@pytest.mark.parametrize("name", ["digits-cnn", "mlp"])
@pytest.mark.parametrize("key", list(TECHNIQUES))
def test_the_child_scores_close_to_the_fp32_torch_model(
    name: str, key: str, built: dict[str, Built], tmp_path: Path
) -> None:
    case = built[name]
    outputs, result = _evaluate(case.paths[key], case.scoring, case.workload, tmp_path)
    want = case.torch_outputs()
    assert outputs.shape == want.shape and outputs.dtype == np.float32
    cosine = _cosine(outputs, want)
    if key == "fp32":
        np.testing.assert_allclose(outputs, want, atol=1e-4, rtol=1e-4)
    else:
        assert cosine.mean() > 0.99 and cosine.min() > 0.95, cosine
        assert (outputs.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.95
    assert set(result["latency"]) == {"1", "4"}
    for entry in result["latency"].values():
        assert entry["median_s"] > 0 and entry["samples"] > 0
    assert result["session_open_s"] > 0 and result["file_batch"] == 1
    io = result["io_dtypes"]
    if key == "int8":  # full integer: the file's inputs and outputs are int8
        assert io == {"inputs": ["int8"], "outputs": ["int8"]}
    else:
        assert io == {"inputs": ["float32"], "outputs": ["float32"]}
    # mlp's batch resizes; digits-cnn flattens to a constant shape, so batch 4 is four
    # calls of its batch 1, and the result says so.
    assert result["resizable"] is (name == "mlp")
    said = " ".join(result["latency"]["4"]["warnings"])
    assert ("does not resize" in said) is (name != "mlp")


def test_applies_to_says_why_not() -> None:
    conv = ModelFacts(task="classification", has_data=True, op_types=frozenset({"Conv", "Relu"}))
    ok, why = LiteRTInt8().applies_to(conv)
    assert ok and "Conv" in why
    no_data = ModelFacts(task="regression", has_data=False, op_types=frozenset({"Gemm"}))
    ok, why = LiteRTInt8().applies_to(no_data)
    assert not ok and "calibrate" in why
    assert LiteRTDynamicInt8().applies_to(no_data)[0]
    gather = ModelFacts(task="embedding", has_data=True, op_types=frozenset({"Gather", "Add"}))
    ok, why = LiteRTDynamicInt8().applies_to(gather)
    assert not ok and "linear or conv" in why
    assert LiteRTInt8().supports_op("Gather") == (
        False,
        "litert-torch's PT2E quantizer does not annotate it; stays float",
    )
    ok, why = LiteRTDynamicInt8().supports_op("Gather")
    assert not ok and "EMBEDDING_LOOKUP" in why
    ok, why = LiteRTDynamicInt8().applies_to(
        ModelFacts(task="embedding", has_data=False, op_types=frozenset({"Gather", "MatMul"}))
    )
    assert ok and "embedding lookup (Gather) makes a file LiteRT refuses" in why


def test_a_file_litert_cannot_open_is_refused_with_the_interpreters_reason(
    tmp_path: Path,
) -> None:
    import torch
    from torch import nn

    from as_bench.workloads import Workload

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(200, 16)
            self.head = nn.Linear(16, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embedding(ids).mean(dim=1))  # type: ignore[no-any-return]

    def build() -> Bag:
        torch.manual_seed(0)
        return Bag().eval()

    def inputs(batch: int) -> tuple[np.ndarray, ...]:
        return (np.random.default_rng(batch).integers(0, 200, (batch, 8)),)

    workload = Workload(
        name="bag", description="embedding bag", task="embedding", make_model=build,
        make_inputs=inputs, input_names=("ids",), output_names=("out",),
    )  # fmt: skip
    context = ApplyContext(input_names=["ids"], workload=workload, work_dir=tmp_path / "work")
    # fp32 opens; dynamic-range int8 quantizes the table in a form the kernel refuses.
    assert LiteRTFp32().apply(Path("x"), {}, tmp_path / "fp32" / "m.onnx", context).is_file()
    with pytest.raises(
        CompressionError, match=r"cannot open the converted file: .*EMBEDDING_LOOKUP"
    ):
        LiteRTDynamicInt8().apply(Path("x"), {}, tmp_path / "dyn" / "m.onnx", context)
    assert not (tmp_path / "dyn" / "m.tflite").exists()


def test_bad_knobs_and_missing_data_are_refused(built: dict[str, Built], tmp_path: Path) -> None:
    case = built["mlp"]
    with pytest.raises(CompressionInputError, match="unknown knobs"):
        LiteRTDynamicInt8().apply(Path("x"), {"bits": 8}, tmp_path / "m.onnx", case.context)
    with pytest.raises(CompressionInputError, match="calibration size 33 is not between 1"):
        LiteRTInt8().apply(Path("x"), {"size": 33}, tmp_path / "m.onnx", case.context)
    no_data = ApplyContext(input_names=["input"], workload=case.workload)
    with pytest.raises(CompressionInputError, match="no calibration data"):
        LiteRTInt8().apply(Path("x"), {}, tmp_path / "m.onnx", no_data)
    with pytest.raises(CompressionInputError, match="needs the workload"):
        LiteRTFp32().apply(Path("x"), {}, tmp_path / "m.onnx", ApplyContext(input_names=["x"]))
    with pytest.raises(CompressionInputError, match="at least 1"):
        LiteRTInt8(sizes=(0,))
