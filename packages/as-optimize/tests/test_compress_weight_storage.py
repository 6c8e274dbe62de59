"""ort-weight-storage: weights stored as int8 or 4-bit blocks, dequantized when loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.compress import (
    ApplyContext,
    ModelFacts,
    OrtWeightStorage,
    Technique,
    available_techniques,
)
from as_optimize.exceptions import CompressionError, CompressionInputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from as_core.runtime import (  # noqa: E402  (after the skips: these need onnxruntime)
    STORED_WEIGHTS_KEY,
    RuntimeOptions,
    onnxruntime_session,
    onnxruntime_session_options,
)

OPTIONS = RuntimeOptions(intra_op_threads=1)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits CNN exported to fp32 ONNX, its examples, labels and fp32 accuracy."""
    from as_bench.export import export_onnx, load_workload

    workload = load_workload("digits-cnn")
    assert workload.dataset is not None
    path, _ = export_onnx(workload, 1, tmp_path_factory.mktemp("fp32"))
    data = {
        "path": path,
        "inputs": workload.dataset.inputs[0].astype(np.float32),
        "labels": workload.dataset.targets,
    }
    data["accuracy"] = _accuracy(path, data)
    return data


def _accuracy(path: Path, data: dict[str, Any]) -> float:
    session = onnxruntime_session(path, OPTIONS)
    logits = session.run(None, {"input": data["inputs"]})[0]
    return float((logits.argmax(axis=1) == data["labels"]).mean() * 100)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))


def _optimized_ops(path: Path, tmp_path: Path) -> set[str]:
    """The operators left once ONNX Runtime has opened ``path`` with weights dequantized."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    session_options = onnxruntime_session_options(
        RuntimeOptions(intra_op_threads=1, graph_optimization="basic"),
        dequantize_stored_weights=True,
    )
    optimized = tmp_path / "optimized.onnx"
    session_options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    return {node.op_type for node in onnx.load(str(optimized)).graph.node}


@pytest.mark.parametrize(
    ("knobs", "most", "drop"),
    [({"bits": 8}, 0.26, 0.5), ({"bits": 4, "block_size": 32}, 0.17, 2.0)],
)
def test_digits_file_shrinks_and_accuracy_holds(
    digits: dict[str, Any], tmp_path: Path, knobs: dict[str, Any], most: float, drop: float
) -> None:
    output = tmp_path / "candidate" / "model.onnx"
    written = OrtWeightStorage().apply(
        digits["path"], knobs, output, ApplyContext(input_names=["input"])
    )
    assert written == output
    assert _size(output) <= most * _size(digits["path"])
    # Scored on the whole dataset (1797 images): int8 weights move the CNN's accuracy by
    # under half a point; 4-bit blocks cost about a point here (1.1 measured).
    assert abs(_accuracy(output, digits) - digits["accuracy"]) <= drop
    model = onnx.load(str(output))
    assert {p.key: p.value for p in model.metadata_props}[STORED_WEIGHTS_KEY]
    ops = [node.op_type for node in model.graph.node]
    # The second convolution and both Gemms; the first convolution's 144 weights are
    # under min_elements and stay fp32.
    assert ops.count("DequantizeLinear") == 3
    # Opened for serving, the stored weights are folded back into fp32 initializers.
    assert "DequantizeLinear" not in _optimized_ops(output, tmp_path)
    session = onnxruntime_session(output, OPTIONS)
    assert session.get_session_options().get_session_config_entry("session.disable_quant_qdq")


def _matmul_model(path: Path, weights: np.ndarray, *, shared: bool = False) -> Path:
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="first")]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, weights.shape[1]])]
    if shared:
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["z"], name="second"))
        outputs.append(
            helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, weights.shape[1]])
        )
    graph = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, weights.shape[0]])],
        outputs,
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(model, {"author": "test"})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("bits", "block_size"), [(8, 0), (8, 32), (4, 0), (4, 32)], ids=["8pc", "8b32", "4pc", "4b32"]
)
def test_stored_weights_are_within_half_a_step_of_fp32(
    tmp_path: Path, bits: int, block_size: int
) -> None:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((96, 40)).astype(np.float32)
    weights[:, 3] *= 50  # one output channel far larger than the others
    weights[:32, 5] = np.abs(weights[:32, 5]) + 1  # a block of positive values only
    baseline = _matmul_model(tmp_path / "fp32.onnx", weights, shared=True)
    knobs = {"bits": bits, "block_size": block_size}
    output = OrtWeightStorage().apply(
        baseline, knobs, tmp_path / "stored" / "model.onnx", ApplyContext(input_names=["x"])
    )
    identity = np.eye(96, dtype=np.float32)
    stored, again = onnxruntime_session(output, OPTIONS).run(None, {"x": identity})
    # Both MatMuls read the one stored weight.
    np.testing.assert_array_equal(stored, again)
    # Groups: a column of the MatMul's weight (its output channel), or blocks of 32 rows
    # of a column (along the reduction axis).
    size = block_size or 96
    groups = weights.reshape(-1, size, 40)
    errors = (stored - weights).reshape(-1, size, 40)
    if bits == 8:  # symmetric, 255 levels across [-peak, peak]: within half a step
        step = np.abs(groups).max(axis=1, keepdims=True) * 2 / 254
        # Blocked scales are stored in fp16 (rounded up: at most 2**-10 more).
        assert np.all(np.abs(errors) <= step * (1 + 2**-10) / 2 + 1e-6)
    else:
        # 16 levels across the group's range, or a clipped part of it where that leaves
        # less squared error: never more than rounding across the whole range.
        low = np.minimum(groups.min(axis=1, keepdims=True), 0)
        high = np.maximum(groups.max(axis=1, keepdims=True), 0)
        scale = (high - low) / 15
        zero = np.rint(-low / scale)
        whole = (np.clip(np.rint(groups / scale) + zero, 0, 15) - zero) * scale
        assert np.all(
            np.square(errors).sum(axis=1) <= np.square(whole - groups).sum(axis=1) * 1.01 + 1e-9
        )
    assert not np.array_equal(stored, weights)
    props = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert props["author"] == "test"  # the model's own metadata is kept


def test_unmarked_or_opted_out_sessions_keep_the_dequantize_nodes(tmp_path: Path) -> None:
    weights = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    baseline = _matmul_model(tmp_path / "fp32.onnx", weights)
    output = OrtWeightStorage().apply(
        baseline, {"bits": 8}, tmp_path / "stored" / "model.onnx", ApplyContext(input_names=["x"])
    )

    def folded(path: Path, options: RuntimeOptions) -> bool:
        session_options = onnxruntime_session(path, options).get_session_options()
        try:
            return bool(session_options.get_session_config_entry("session.disable_quant_qdq"))
        except RuntimeError:  # never set
            return False

    assert folded(output, OPTIONS)
    assert not folded(baseline, OPTIONS)
    assert not folded(output, RuntimeOptions(intra_op_threads=1, dequantize_stored_weights=False))
    x = np.ones((2, 64), dtype=np.float32)
    opted_out = RuntimeOptions(intra_op_threads=1, dequantize_stored_weights=False)
    np.testing.assert_allclose(
        onnxruntime_session(output, OPTIONS).run(None, {"x": x})[0],
        onnxruntime_session(output, opted_out).run(None, {"x": x})[0],
        rtol=1e-4,
        atol=1e-4,
    )


def test_a_model_with_quantized_activations_is_refused(
    digits: dict[str, Any], tmp_path: Path
) -> None:
    from as_optimize.compress import OrtStaticInt8

    calibration = (digits["inputs"][:32],)
    static = OrtStaticInt8().apply(
        digits["path"],
        {"method": "MinMax", "size": 32, "per_channel": True},
        tmp_path / "static" / "model.onnx",
        ApplyContext(input_names=["input"], calibration=calibration),
    )
    technique = OrtWeightStorage()
    facts = ModelFacts(
        task="classification",
        has_data=True,
        op_types=frozenset(n.op_type for n in onnx.load(str(static)).graph.node),
    )
    applies, why = technique.applies_to(facts)
    assert not applies and "already quantizes" in why
    with pytest.raises(CompressionError, match="already quantizes its activations"):
        technique.apply(static, {"bits": 8}, tmp_path / "out" / "model.onnx", _context())


def _context() -> ApplyContext:
    return ApplyContext(input_names=["input"])


def test_nothing_to_store_is_an_error_that_says_why(tmp_path: Path) -> None:
    small = _matmul_model(tmp_path / "small.onnx", np.ones((4, 4), dtype=np.float32))
    with pytest.raises(CompressionError, match="no weight of 256 values or more"):
        OrtWeightStorage().apply(small, {"bits": 8}, tmp_path / "out" / "model.onnx", _context())
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_bad_knobs_are_refused_by_name(tmp_path: Path) -> None:
    technique = OrtWeightStorage()
    out = tmp_path / "model.onnx"
    with pytest.raises(CompressionInputError, match="bits must be one of"):
        technique.apply(out, {"bits": 3}, out, _context())
    with pytest.raises(CompressionInputError, match="block_size must be 0"):
        technique.apply(out, {"bits": 4, "block_size": 24}, out, _context())
    with pytest.raises(CompressionInputError, match="unknown knobs"):
        technique.apply(out, {"bits": 8, "per_channel": True}, out, _context())
    with pytest.raises(CompressionInputError, match="bits must be one of"):
        OrtWeightStorage(settings=((2, 0),))


def test_it_is_offered_by_default_and_int8_comes_first() -> None:
    technique = next(t for t in available_techniques() if t.name == "ort-weight-storage")
    assert isinstance(technique, Technique)
    # Pipelines stack a torch stage with each technique's first setting.
    assert technique.knobs()[0] == {"bits": 8}
    assert technique.supports_op("Conv")[0] and technique.supports_op("Gather")[0]
    assert not technique.supports_op("Relu")[0]
    gemm_only = ModelFacts(task="classification", has_data=False, op_types=frozenset({"Gemm"}))
    assert technique.applies_to(gemm_only)[0]


def _embedding_model(path: Path) -> Path:
    """ids -> Gather(table 512x64) -> MatMul(64x64) -> Relu -> MatMul(64x32): a tiny encoder."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(2)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((512, 64)).astype(np.float32), "table"),
        numpy_helper.from_array((rng.standard_normal((64, 64)) / 8).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((64, 32)) / 8).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed"),
        helper.make_node("MatMul", ["embedded", "w1"], ["hidden"], name="dense1"),
        helper.make_node("Relu", ["hidden"], ["active"], name="relu"),
        helper.make_node("MatMul", ["active", "w2"], ["y"], name="dense2"),
    ]
    graph = helper.make_graph(
        nodes,
        "encoder",
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [None, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 8, 32])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("large_table", [True, False], ids=["4-bit-table", "small-table-int8"])
def test_stored_tables_then_int8_spares_the_most_sensitive_matmul_as_stored_int8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_table: bool
) -> None:
    from as_optimize.compress import _weight_storage

    if large_table:  # the 512 x 64 table counts as large: 4-bit blocks
        monkeypatch.setattr(_weight_storage, "FOUR_BIT_MIN_TABLE", 1000)
    baseline = _embedding_model(tmp_path / "fp32.onnx")
    ids = np.random.default_rng(3).integers(0, 512, size=(16, 8), dtype=np.int64)
    context = ApplyContext(input_names=["ids"], calibration=(ids,), work_dir=tmp_path / "work")
    knobs = next(k for k in OrtWeightStorage().knobs() if k.get("then_int8"))
    assert knobs == {
        "bits": 4,
        "block_size": 32,
        "ops": "Gather",
        "then_int8": True,
        "keep": 4,
        "keep_as": "int8-stored",
    }
    with pytest.raises(CompressionError, match="sparing 4 nodes leaves none"):
        OrtWeightStorage().apply(baseline, knobs, tmp_path / "c4" / "model.onnx", context)
    output = OrtWeightStorage().apply(
        baseline, {**knobs, "keep": 1}, tmp_path / "c1" / "model.onnx", context
    )
    model = onnx.load(str(output))
    ops = [node.op_type for node in model.graph.node]
    # The table in 4 bits (in int8 per row when small) and the spared MatMul's weight in
    # int8, each read through a DequantizeLinear; the other MatMul on int8 kernels.
    assert ops.count("DequantizeLinear") == 2
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops
    assert ops.count("MatMul") == 1
    stored = {init.name: init.data_type for init in model.graph.initializer}
    if large_table:
        assert stored["table.int4"] == onnx.TensorProto.UINT4
        assert sum(1 for name in stored if name.endswith(".int8")) == 1
        assert _size(output) < 0.2 * _size(baseline)
    else:
        assert "table.int4" not in stored and stored["table.int8"] == onnx.TensorProto.INT8
        assert _size(output) < 0.3 * _size(baseline)
    session = onnxruntime_session(output, OPTIONS)
    folded = session.get_session_options().get_session_config_entry("session.disable_quant_qdq")
    assert folded == "1"
    reference = onnxruntime_session(baseline, OPTIONS).run(None, {"ids": ids})[0].ravel()
    got = session.run(None, {"ids": ids})[0].ravel()
    cosine = float(got @ reference / np.linalg.norm(got) / np.linalg.norm(reference))
    assert cosine > 0.98


def test_embedding_settings_are_checked_by_name(tmp_path: Path) -> None:
    baseline = _embedding_model(tmp_path / "fp32.onnx")
    technique = OrtWeightStorage()
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(CompressionInputError, match="needs ops 'Gather'"):
        technique.apply(baseline, {"bits": 4, "then_int8": True}, out, _context())
    with pytest.raises(CompressionInputError, match="they need then_int8"):
        technique.apply(baseline, {"bits": 4, "ops": "Gather", "keep": 2}, out, _context())
    with pytest.raises(CompressionInputError, match="ops 'conv' is not one of"):
        technique.apply(baseline, {"bits": 4, "ops": "conv"}, out, _context())
    with pytest.raises(CompressionInputError, match="keep_as 'int2' is not one of"):
        OrtWeightStorage(embeddings=((32, 4, "int2"),))
    # Only the table (small: int8 per row): the MatMuls stay fp32 initializers.
    only_table = technique.apply(
        baseline, {"bits": 4, "block_size": 32, "ops": "Gather"}, out, _context()
    )
    names = {init.name for init in onnx.load(str(only_table)).graph.initializer}
    assert {"table.int8", "w1", "w2"} <= names
