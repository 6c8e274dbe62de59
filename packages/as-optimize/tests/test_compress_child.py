"""The evaluation child's contract: a spec in, outputs and a result out, or exit 1 with why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.compress._child import main


def _relu_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "relu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return path


def _spec(tmp_path: Path, model: Path) -> dict[str, Any]:
    scoring = np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4)
    np.savez(tmp_path / "eval.npz", in0=scoring)
    np.savez(tmp_path / "bench.npz", b1_in0=scoring[:1], b3_in0=scoring[:3])
    return {
        "model": str(model),
        "input_names": ["input"],
        "eval_inputs": str(tmp_path / "eval.npz"),
        "chunk": 4,
        "bench_inputs": str(tmp_path / "bench.npz"),
        "batch_sizes": [1, 3],
        "threads": 1,
        "measure": {"max_time_s": 0.02, "min_time_s": 0.01, "remeasure_noisy": 0},
        "outputs": str(tmp_path / "out.npy"),
        "result": str(tmp_path / "result.json"),
    }


def test_the_child_writes_outputs_in_order_and_latency_per_batch(tmp_path: Path) -> None:
    spec = _spec(tmp_path, _relu_model(tmp_path / "relu.onnx"))
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    assert main([str(tmp_path / "spec.json")]) == 0
    outputs = np.load(tmp_path / "out.npy")
    expected = np.maximum(np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4), 0)
    np.testing.assert_array_equal(outputs, expected)  # 3 chunks of 4, 4 and 2 rows
    result = json.loads((tmp_path / "result.json").read_text())
    assert set(result["latency"]) == {"1", "3"}
    for latency in result["latency"].values():
        assert latency["ci_low_s"] <= latency["median_s"] <= latency["ci_high_s"]
    assert result["providers"] == ["CPUExecutionProvider"]
    assert result["runtime_options"]["intra_op_threads"] == 1


def test_a_model_the_runtime_refuses_exits_1_with_the_reason_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    spec = _spec(tmp_path, broken)
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    assert main([str(tmp_path / "spec.json")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("InvalidProtobuf: ") and "INVALID_PROTOBUF" in last
    assert not (tmp_path / "result.json").exists()


def _matmul_model(path: Path, rows: int, columns: int) -> Path:
    import onnx
    from onnx import TensorProto, helper

    weights = np.random.default_rng(0).standard_normal((rows, columns)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["output"])],
        "matmul",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", columns])],
        initializer=[onnx.numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return path


def test_the_child_reports_the_memory_its_model_took(tmp_path: Path) -> None:
    def memory(model: Path, rows: int) -> int:
        folder = tmp_path / model.stem
        folder.mkdir()
        spec = _spec(folder, model)
        scoring = np.ones((10, rows), dtype=np.float32)
        np.savez(folder / "eval.npz", in0=scoring)
        np.savez(folder / "bench.npz", b1_in0=scoring[:1], b3_in0=scoring[:3])
        (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        # A process of its own per model: the peak it reports is its whole life's.
        code = "import sys; from as_optimize.compress._child import main; main(sys.argv[1:])"
        subprocess.run([sys.executable, "-c", code, str(folder / "spec.json")], check=True)
        value = json.loads((folder / "result.json").read_text())["memory_bytes"]
        assert isinstance(value, int)
        return value

    big = memory(_matmul_model(tmp_path / "big.onnx", 2048, 4096), 2048)  # 32 MiB of weights
    small = memory(_relu_model(tmp_path / "relu.onnx"), 4)
    assert big >= 32 * 2**20
    assert small < big - 24 * 2**20
