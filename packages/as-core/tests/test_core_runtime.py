"""The one runtime setup: options are validated and reach ONNX Runtime as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from as_core.runtime import RuntimeOptions, available_cpus


def test_options_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="intra_op_threads must be at least 1"):
        RuntimeOptions(intra_op_threads=0)
    with pytest.raises(ValueError, match="graph_optimization"):
        RuntimeOptions(graph_optimization="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="providers"):
        RuntimeOptions(providers=())


def test_spinning_is_off_by_default_and_described() -> None:
    options = RuntimeOptions()
    assert options.spin_wait is False
    assert options.describe()["providers"] == ["CPUExecutionProvider"]
    assert available_cpus() >= 1


def _tiny_model(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    node = helper.make_node("Add", ["x", "x"], ["y"])
    graph = helper.make_graph(
        [node],
        "double",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnxruntime_session_gets_the_options(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from as_core.runtime import onnxruntime_session, onnxruntime_session_options

    options = RuntimeOptions(intra_op_threads=1, inter_op_threads=1, graph_optimization="basic")
    session_options = onnxruntime_session_options(options)
    assert session_options.intra_op_num_threads == 1
    assert session_options.inter_op_num_threads == 1
    assert session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    session = onnxruntime_session(_tiny_model(tmp_path / "m.onnx"), options)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(y, 2 * x)
    assert session.get_providers() == ["CPUExecutionProvider"]
