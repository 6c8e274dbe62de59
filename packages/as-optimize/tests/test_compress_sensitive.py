"""Sensitive nodes kept fp32 by dynamic int8, and 4-bit weight-only quantization."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.compress._sensitivity import (
    clear_sensitivity_cache,
    dynamic_int8_sensitivity,
    weighted_nodes,
)
from as_optimize.compress._techniques import (
    ApplyContext,
    ModelFacts,
    OrtDynamicInt8,
    OrtInt4WeightOnly,
    Technique,
    available_techniques,
)
from as_optimize.exceptions import CompressionError, CompressionInputError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

WIDTH = 16


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_sensitivity_cache()
    yield
    clear_sensitivity_cache()


def _save(
    nodes: list[Any], inputs: list[Any], inits: dict[str, np.ndarray], path: Path, rank: int = 2
) -> Path:
    from onnx import helper, numpy_helper

    shape = [f"d{i}" for i in range(rank)]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """x -> MatMul "first" -> MatMul "harmful" -> MatMul "last" -> y.

    The middle weight has one outlier 20 times its values' spread: one int8 scale for the
    whole tensor (per-tensor) rounds every other value to a few steps, so quantizing it
    costs far more than quantizing the two evenly spread weights.
    """
    from onnx import helper

    rng = np.random.default_rng(0)
    weights = {name: rng.normal(0, 0.3, (WIDTH, WIDTH)).astype(np.float32) for name in "abc"}
    weights["b"][3, 5] = 6.0
    nodes = [
        helper.make_node("MatMul", ["x", "a"], ["h1"], name="first"),
        helper.make_node("MatMul", ["h1", "b"], ["h2"], name="harmful"),
        helper.make_node("MatMul", ["h2", "c"], ["y"], name="last"),
    ]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", WIDTH])
    return _save(nodes, [x], weights, tmp_path / "chain" / "model.onnx")


def _examples(rows: int = 12) -> tuple[np.ndarray, ...]:
    return (np.random.default_rng(1).normal(size=(rows, WIDTH)).astype(np.float32),)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).mean())


def _graph(path: Path) -> Any:
    return onnx.load(str(path)).graph


def test_the_node_made_harmful_to_quantize_is_ranked_first(chain: Path, tmp_path: Path) -> None:
    ticks = iter([10.0, 13.5])
    ranking = dynamic_int8_sensitivity(
        chain,
        ["x"],
        _examples(),
        per_channel=False,
        work_dir=tmp_path / "work",
        clock=lambda: next(ticks),
    )
    assert ranking.nodes[0].name == "harmful"
    assert {n.name for n in ranking.nodes} == {"first", "harmful", "last"}
    drops = [n.drop for n in ranking.nodes]
    assert drops == sorted(drops, reverse=True)
    assert ranking.nodes[0].drop > 2 * ranking.nodes[1].drop
    assert ranking.nodes[0].min_cosine <= ranking.nodes[0].mean_cosine < 1.0
    assert ranking.seconds == pytest.approx(3.5) and ranking.examples == 12
    assert ranking.top(1) == ["harmful"]
    # The one-node models are removed; the ranking is kept for the next setting.
    assert not any((tmp_path / "work").rglob("*.onnx"))
    again = dynamic_int8_sensitivity(chain, ["x"], _examples(), per_channel=False)
    assert again is ranking


def test_only_nodes_with_initializer_weights_are_ranked(tmp_path: Path) -> None:
    from onnx import helper

    weight = np.eye(WIDTH, dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="weighted"),
        helper.make_node("MatMul", ["h", "x2"], ["y"], name="activations"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, WIDTH]),
        helper.make_tensor_value_info("x2", onnx.TensorProto.FLOAT, [WIDTH, 2]),
    ]
    path = _save(nodes, inputs, {"w": weight}, tmp_path / "m.onnx")
    assert weighted_nodes(path, ["MatMul", "Gather"]) == [("weighted", "MatMul")]


def test_keep_leaves_the_most_sensitive_node_in_fp32(chain: Path, tmp_path: Path) -> None:
    technique = OrtDynamicInt8()
    context = ApplyContext(input_names=["x"], calibration=_examples(), work_dir=tmp_path / "w")
    plain = technique.apply(chain, {"per_channel": False}, tmp_path / "p" / "m.onnx", context)
    kept = technique.apply(
        chain,
        {"per_channel": False, "keep": 1, "keep_as": "fp32"},
        tmp_path / "k" / "m.onnx",
        context,
    )
    graph = _graph(kept)
    by_name = {node.name: node for node in graph.node}
    assert by_name["harmful"].op_type == "MatMul"
    weight = next(i for i in graph.initializer if i.name == by_name["harmful"].input[1])
    assert weight.data_type == onnx.TensorProto.FLOAT
    assert [n.op_type for n in graph.node].count("MatMulInteger") == 2
    assert "MatMul" not in [n.op_type for n in _graph(plain).node]
    x = np.random.default_rng(2).normal(size=(32, WIDTH)).astype(np.float32)
    reference = _run(chain, x)
    assert _mean_cosine(_run(kept, x), reference) > _mean_cosine(_run(plain, x), reference)


def test_keep_as_int8_weights_gives_the_sensitive_node_8_bit_blocks(
    chain: Path, tmp_path: Path
) -> None:
    technique = OrtDynamicInt8()
    context = ApplyContext(input_names=["x"], calibration=_examples(), work_dir=tmp_path / "w")
    knobs = {"per_channel": False, "keep": 1, "keep_as": "int8-weights"}
    path = technique.apply(chain, knobs, tmp_path / "k" / "m.onnx", context)
    nodes = _graph(path).node
    blocks = [n for n in nodes if n.op_type == "MatMulNBits"]
    # The middle MatMul (h1 -> h2) alone, the one whose int8 costs the most.
    assert [(n.input[0], n.output[0]) for n in blocks] == [("h1", "h2")]
    bits = {a.name: a.i for a in blocks[0].attribute}
    assert bits["bits"] == 8 and bits["accuracy_level"] == 4
    assert [n.op_type for n in nodes].count("MatMulInteger") == 2
    assert "MatMul" not in [n.op_type for n in nodes]
    assert not any((tmp_path / "w").rglob("*.onnx"))
    plain = technique.apply(chain, {"per_channel": False}, tmp_path / "p" / "m.onnx", context)
    x = np.random.default_rng(2).normal(size=(32, WIDTH)).astype(np.float32)
    reference = _run(chain, x)
    assert _mean_cosine(_run(path, x), reference) > _mean_cosine(_run(plain, x), reference)


def test_keep_refuses_to_spare_every_node_and_bad_values(chain: Path, tmp_path: Path) -> None:
    context = ApplyContext(input_names=["x"], calibration=_examples())
    with pytest.raises(CompressionError, match="leaves none of the model's 3"):
        OrtDynamicInt8().apply(chain, {"keep": 3}, tmp_path / "m.onnx", context)
    with pytest.raises(CompressionInputError, match="0 or more"):
        OrtDynamicInt8(keep=(-1,))
    with pytest.raises(CompressionInputError, match="'int4'"):
        OrtDynamicInt8().apply(chain, {"keep": 1, "keep_as": "int4"}, tmp_path / "b.onnx", context)
    no_data = ApplyContext(input_names=["x"])
    with pytest.raises(CompressionInputError, match="no calibration examples"):
        OrtDynamicInt8().apply(chain, {"keep": 1}, tmp_path / "n.onnx", no_data)


def test_dynamic_int8_settings_add_spared_nodes_after_the_plain_ones() -> None:
    knobs = OrtDynamicInt8(keep=(0, 4), keep_per_tensor=(8,), keep_as="fp32").knobs()
    assert knobs == [
        {"per_channel": True},
        {"per_channel": False},
        {"per_channel": True, "keep": 4, "keep_as": "fp32"},
        {"per_channel": False, "keep": 8, "keep_as": "fp32"},
    ]


@pytest.fixture
def embedder(tmp_path: Path) -> Path:
    """ids -> Gather(table 2048 x 64) -> MatMul -> MatMul -> y: an embedding, two layers.

    The second layer's weight has an outlier, so int8 costs it the most.
    """
    from onnx import helper

    rng = np.random.default_rng(3)
    inits = {
        "table": rng.normal(0, 1, (2048, 64)).astype(np.float32),
        "w": rng.normal(0, 0.2, (64, 64)).astype(np.float32),
        "w2": rng.normal(0, 0.2, (64, 64)).astype(np.float32),
    }
    inits["w2"][7, 9] = 8.0
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embedding"),
        helper.make_node("MatMul", ["e", "w"], ["h"], name="project"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="outlier"),
    ]
    ids = helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["batch", 4])
    return _save(nodes, [ids], inits, tmp_path / "embedder" / "model.onnx", rank=3)


def _run_ids(path: Path, ids: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"ids": ids})[0])


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        (
            {"block_size": 32, "ops": "MatMul+Gather", "then_int8": False},
            {"MatMulNBits", "GatherBlockQuantized"},
        ),
        ({"block_size": 128, "ops": "Gather", "then_int8": True}, {"GatherBlockQuantized"}),
        ({"block_size": 32, "ops": "Gather", "then_int8": False}, {"GatherBlockQuantized"}),
    ],
    ids=["matmul+gather", "gather-then-int8", "gather"],
)
def test_int4_writes_4_bit_operators_and_shrinks_the_file(
    knobs: dict[str, Any], expected: set[str], embedder: Path, tmp_path: Path
) -> None:
    context = ApplyContext(input_names=["ids"], work_dir=tmp_path / "work")
    path = OrtInt4WeightOnly().apply(embedder, knobs, tmp_path / "c" / "model.onnx", context)
    ops = {node.op_type for node in _graph(path).node}
    assert expected <= ops and "Gather" not in ops
    if knobs["ops"] == "Gather":
        assert ("MatMulInteger" in ops) is knobs["then_int8"]
        assert ("MatMul" in ops) is not knobs["then_int8"]
    assert path.stat().st_size < 0.3 * embedder.stat().st_size
    assert not any((tmp_path / "work").rglob("*.onnx"))
    ids = np.random.default_rng(4).integers(0, 2048, size=(8, 4))
    assert _mean_cosine(_run_ids(path, ids), _run_ids(embedder, ids)) > 0.95


@pytest.mark.parametrize("keep_as", ["fp32", "int8-weights"])
def test_int4_embeddings_then_int8_spare_the_sensitive_matmul(
    keep_as: str, embedder: Path, tmp_path: Path
) -> None:
    ids = np.random.default_rng(5).integers(0, 2048, size=(12, 4))
    context = ApplyContext(input_names=["ids"], calibration=(ids,), work_dir=tmp_path / "w")
    knobs = {"block_size": 32, "ops": "Gather", "then_int8": True, "keep": 1, "keep_as": keep_as}
    path = OrtInt4WeightOnly().apply(embedder, knobs, tmp_path / "c" / "model.onnx", context)
    nodes = _graph(path).node
    ops = [n.op_type for n in nodes]
    assert "GatherBlockQuantized" in ops and ops.count("MatMulInteger") == 1
    spared = "MatMul" if keep_as == "fp32" else "MatMulNBits"
    assert [n.output[0] for n in nodes if n.op_type == spared] == ["y"]
    assert not any((tmp_path / "w").rglob("*.onnx"))
    with pytest.raises(CompressionInputError, match="need then_int8"):
        OrtInt4WeightOnly().apply(
            embedder, {"ops": "Gather", "keep": 1}, tmp_path / "x.onnx", context
        )


def test_int4_knobs_are_checked() -> None:
    technique = OrtInt4WeightOnly()
    context = ApplyContext(input_names=["ids"])
    with pytest.raises(CompressionInputError, match="already turns them to 4 bits"):
        technique.apply(
            Path("unused.onnx"), {"ops": "MatMul+Gather", "then_int8": True}, Path("o"), context
        )
    with pytest.raises(CompressionInputError, match="power of two"):
        OrtInt4WeightOnly(block_sizes=(48,))
    with pytest.raises(CompressionInputError, match="'Conv'"):
        technique.apply(Path("unused.onnx"), {"ops": "Conv"}, Path("o"), context)


def test_int4_says_where_it_applies_and_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    technique: Technique = OrtInt4WeightOnly()
    assert "ort-int4-weight-only" in [t.name for t in available_techniques()]

    def facts(*ops: str) -> ModelFacts:
        return ModelFacts(task="embedding", has_data=False, op_types=frozenset(ops))

    applies, reason = technique.applies_to(facts("Gather", "MatMul", "Add"))
    assert applies and "Gather, MatMul" in reason
    applies, reason = technique.applies_to(facts("Gemm", "Relu"))
    assert not applies and "Gemm" in reason
    applies, reason = technique.applies_to(facts("Conv", "Relu"))
    assert not applies and "no MatMul or Gather" in reason
    assert technique.supports_op("Gemm")[0] is False
    assert technique.supports_op("Gather")[0] is True
    # An ONNX Runtime without the weight-only quantizer module.
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization.matmul_nbits_quantizer", None)
    applies, reason = technique.applies_to(facts("MatMul"))
    assert not applies and "MatMulNBitsQuantizer" in reason
