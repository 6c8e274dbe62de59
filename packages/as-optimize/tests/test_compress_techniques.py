"""Each built-in technique turns the digits CNN's fp32 ONNX model into one that still works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.compress import (
    ApplyContext,
    Fp16,
    ModelFacts,
    OrtDynamicInt8,
    OrtStaticInt8,
    Technique,
    default_techniques,
    layer_support,
)
from as_optimize.exceptions import CompressionInputError

#: Examples set aside for calibration; accuracy is scored on the rest.
CALIBRATION = 64


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits CNN exported to fp32 ONNX, its data split, and the fp32 accuracy."""
    from as_bench.export import export_onnx, load_workload

    workload = load_workload("digits-cnn")
    assert workload.dataset is not None
    path, dynamic = export_onnx(workload, 1, tmp_path_factory.mktemp("fp32"))
    assert dynamic
    inputs = workload.dataset.inputs[0].astype(np.float32)
    data = {
        "path": path,
        "calibration": (inputs[:CALIBRATION],),
        "inputs": inputs[CALIBRATION:],
        "labels": workload.dataset.targets[CALIBRATION:],
    }
    data["accuracy"] = _accuracy(path, data)
    return data


def _accuracy(path: Path, data: dict[str, Any]) -> float:
    from as_core.runtime import RuntimeOptions, onnxruntime_session

    session = onnxruntime_session(path, RuntimeOptions(intra_op_threads=1))
    logits = session.run(None, {"input": data["inputs"]})[0]
    return float((logits.argmax(axis=1) == data["labels"]).mean() * 100)


def _context(data: dict[str, Any]) -> ApplyContext:
    return ApplyContext(input_names=["input"], calibration=data["calibration"])


@pytest.mark.parametrize(
    ("technique", "knobs"),
    [
        (OrtDynamicInt8(), {"per_channel": True}),
        (OrtDynamicInt8(), {"per_channel": False}),
        (OrtStaticInt8(), {"method": "MinMax", "size": 64, "per_channel": True}),
        (OrtStaticInt8(), {"method": "Percentile", "size": 64, "per_channel": False}),
        (OrtStaticInt8(), {"method": "Entropy", "size": 32, "per_channel": True}),
        (Fp16(), {"keep_io_types": True}),
    ],
    ids=lambda value: getattr(value, "name", None) or "-".join(map(str, dict(value).values())),
)
def test_each_technique_keeps_digits_accuracy_within_one_point(
    technique: Technique,
    knobs: dict[str, Any],
    digits: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    facts = ModelFacts(
        task="classification", has_data=True, op_types=frozenset({"Conv", "Gemm", "Relu"})
    )
    applies, reason = technique.applies_to(facts)
    assert applies, reason
    out = technique.apply(digits["path"], knobs, tmp_path / "model.onnx", _context(digits))
    assert out.is_file()
    assert capsys.readouterr().out == ""  # stdout is the command's table or JSON
    accuracy = _accuracy(out, digits)
    assert digits["accuracy"] - accuracy <= 1.0, (technique.name, knobs, accuracy)


def test_int8_files_are_smaller_than_fp32(digits: dict[str, Any], tmp_path: Path) -> None:
    fp32 = sum(p.stat().st_size for p in digits["path"].parent.iterdir())
    static = OrtStaticInt8().apply(
        digits["path"],
        {"method": "MinMax", "size": 16, "per_channel": True},
        tmp_path / "s.onnx",
        _context(digits),
    )
    assert static.stat().st_size < fp32 / 2


def test_static_int8_needs_data_and_says_so() -> None:
    facts = ModelFacts(task="embedding", has_data=False, op_types=frozenset({"MatMul"}))
    applies, reason = OrtStaticInt8().applies_to(facts)
    assert not applies
    assert "calibrate" in reason


def test_dynamic_int8_does_not_apply_to_gemm_only_models() -> None:
    facts = ModelFacts(task="classification", has_data=True, op_types=frozenset({"Gemm", "Relu"}))
    applies, reason = OrtDynamicInt8().applies_to(facts)
    assert not applies
    assert "Gemm" in reason


def test_layer_support_names_the_operator_and_the_reason() -> None:
    ok, reason = layer_support(OrtDynamicInt8(), "Linear")
    assert ok and reason.startswith("partly") and "Gemm" in reason
    ok, reason = layer_support(OrtStaticInt8(), "Softmax")
    assert not ok and "QDQ registry" in reason
    ok, reason = layer_support(Fp16(), "SomethingNew")
    assert not ok and "SomethingNew" in reason
    ok, reason = layer_support(Fp16(), "Dropout")
    assert not ok and "no operator" in reason


@pytest.mark.parametrize(
    ("make", "knobs", "named"),
    [
        (OrtStaticInt8, {"method": "Median", "size": 8, "per_channel": True}, "Median"),
        (OrtStaticInt8, {"method": "MinMax", "size": 0, "per_channel": True}, "size 0"),
        (OrtStaticInt8, {"method": "MinMax", "size": 65, "per_channel": True}, "size 65"),
        (OrtDynamicInt8, {"per_channel": True, "bits": 4}, "bits"),
        (Fp16, {"keep_io": True}, "keep_io"),
    ],
)
def test_bad_knobs_are_refused_by_name(
    make: Any, knobs: dict[str, Any], named: str, digits: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(CompressionInputError, match=named):
        make().apply(digits["path"], knobs, tmp_path / "m.onnx", _context(digits))


def test_bad_default_knobs_are_refused_when_the_technique_is_made() -> None:
    with pytest.raises(CompressionInputError, match="'Median'"):
        OrtStaticInt8(methods=("Median",))
    with pytest.raises(CompressionInputError, match="at least 1"):
        OrtStaticInt8(sizes=(0,))


def test_default_techniques_satisfy_the_protocol() -> None:
    techniques = default_techniques()
    assert [t.name for t in techniques] == ["ort-dynamic-int8", "ort-static-int8", "ort-fp16"]
    for technique in techniques:
        assert isinstance(technique, Technique)
        assert technique.runtime == "onnxruntime"
        assert technique.knobs()
