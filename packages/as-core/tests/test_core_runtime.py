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


def _stored_weights_model(path: Path, *, marked: bool) -> Path:
    """``y = x @ dequantize(w)``: an int8 weight read through DequantizeLinear."""
    onnx = pytest.importorskip("onnx")
    from as_core.runtime import DEQUANTIZE_AT_LOAD, STORED_WEIGHTS_KEY

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    values = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    nodes = [
        helper.make_node("DequantizeLinear", ["w.int8", "w.scale"], ["w"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stored",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])],
        initializer=[
            numpy_helper.from_array(values, "w.int8"),
            numpy_helper.from_array(np.array([0.5, 1, 2, 4], dtype=np.float32), "w.scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if marked:
        helper.set_model_props(model, {STORED_WEIGHTS_KEY: DEQUANTIZE_AT_LOAD})
    onnx.save(model, str(path))
    return path


def _folds(session: object) -> bool:
    """Whether the session was opened with ONNX Runtime's QDQ handling off (weights folded)."""
    options = session.get_session_options()  # type: ignore[attr-defined]
    try:
        return bool(options.get_session_config_entry("session.disable_quant_qdq") == "1")
    except RuntimeError:  # the entry was never set
        return False


@pytest.mark.parametrize("marked", [True, False])
def test_marked_models_have_their_stored_weights_dequantized_at_load(
    tmp_path: Path, marked: bool
) -> None:
    pytest.importorskip("onnxruntime")
    from as_core.runtime import onnxruntime_session

    path = _stored_weights_model(tmp_path / "m.onnx", marked=marked)
    options = RuntimeOptions(intra_op_threads=1)
    session = onnxruntime_session(path, options)
    assert _folds(session) is marked
    expected = np.eye(3, dtype=np.float32) @ (
        np.arange(-6, 6, dtype=np.float32).reshape(3, 4) * np.array([0.5, 1, 2, 4])
    )
    np.testing.assert_array_equal(
        session.run(None, {"x": np.eye(3, dtype=np.float32)})[0], expected
    )
    # Opting out, or disabling graph optimization, leaves ONNX Runtime's default.
    for off in (
        RuntimeOptions(intra_op_threads=1, dequantize_stored_weights=False),
        RuntimeOptions(intra_op_threads=1, graph_optimization="disable"),
    ):
        assert not _folds(onnxruntime_session(path, off))
