"""``as-optimize run``: candidates that crash or lose accuracy are rejected, the rest compete."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.cli import main
from as_optimize.compress import (
    Fp16,
    OrtStaticInt8,
    QualityGate,
    SearchOptions,
    SearchReport,
    default_techniques,
    run_search,
)
from as_optimize.exceptions import CompressionInputError

# One worker runs the shared search, rather than each worker its own copy.
pytestmark = pytest.mark.xdist_group("compress-search")

#: Environment variable the test's sitecustomize reads: a child whose command line holds
#: this text kills itself with SIGSEGV, as a runtime crashing on a model would.
CRASH_ON = "AS_OPTIMIZE_TEST_SEGFAULT_ON"

SITECUSTOMIZE = f"""
import os, signal, sys
_needle = os.environ.get({CRASH_ON!r})
if _needle and any(_needle in arg for arg in sys.argv):
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def _quick(**overrides: Any) -> SearchOptions:
    # No torch stages unless a test asks: these tests are about techniques alone.
    values: dict[str, Any] = {"max_time_s": 0.05, "min_time_s": 0.01, "threads": 1, "stages": []}
    values.update(overrides)
    return SearchOptions(**values)


@pytest.fixture(scope="module")
def searched(
    tmp_path_factory: pytest.TempPathFactory, broken_head: Any
) -> Iterator[tuple[SearchReport, Path]]:
    """One search on the digits CNN with a crashing and a broken candidate among real ones."""
    hooks = tmp_path_factory.mktemp("hooks")
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE), encoding="utf-8")
    output = tmp_path_factory.mktemp("search") / "out"
    with pytest.MonkeyPatch.context() as patch:
        path = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", str(hooks) + (os.pathsep + path if path else ""))
        patch.setenv(CRASH_ON, f"{os.sep}ort-fp16-io32{os.sep}")
        techniques = [
            OrtStaticInt8(methods=("MinMax",), sizes=(64,), per_channel=(True,)),
            broken_head(name="scrambled-head"),
            Fp16(),
        ]
        report = run_search(
            "digits-cnn",
            output,
            QualityGate(max_accuracy_drop=1.0),
            _quick(techniques=techniques, calibration_examples=48),
        )
    yield report, output


def _candidate(report: SearchReport, cid: str) -> Any:
    return next(c for c in report.candidates if c.id == cid)


def test_a_candidate_that_crashes_its_child_is_rejected_with_the_signal(
    searched: tuple[SearchReport, Path],
) -> None:
    report, _ = searched
    crashed = _candidate(report, "ort-fp16-io32")
    assert crashed.status == "rejected"
    assert "crashed in its child process (SIGSEGV)" in crashed.reason
    assert crashed.latency == {} and crashed.quality is None


def test_the_gate_rejects_a_candidate_that_loses_accuracy(
    searched: tuple[SearchReport, Path],
) -> None:
    report, _ = searched
    broken = _candidate(report, "scrambled-head")
    assert broken.status == "rejected"
    assert broken.reason.startswith("fails the quality gate: accuracy")
    assert "over the 1 pt allowed" in broken.reason
    assert broken.quality is not None and broken.quality.accuracy is not None
    assert broken.quality.accuracy < 50
    assert broken.latency  # it was measured; quality, not speed, rejected it
    assert broken.id not in report.pareto and report.winner != broken.id


def test_a_good_candidate_passes_and_the_winner_is_written(
    searched: tuple[SearchReport, Path],
) -> None:
    report, output = searched
    static = _candidate(report, "ort-static-int8-minmax-48-pc")
    assert static.status == "passed"
    assert static.knobs == {"method": "MinMax", "size": 48, "per_channel": True}
    assert static.notes == ["calibration size 64 lowered to the 48 examples set aside"]
    assert static.quality is not None and static.quality.accuracy_drop is not None
    assert static.quality.accuracy_drop <= 1.0
    assert static.size_bytes is not None and report.baseline.size_bytes is not None
    assert static.size_bytes < report.baseline.size_bytes
    # The memory each evaluating child held for its model, the baseline's included.
    assert static.memory_bytes is not None and report.baseline.memory_bytes is not None
    assert 0 < static.memory_bytes < 2**30 and 0 < report.baseline.memory_bytes < 2**30
    assert report.winner in {"fp32", static.id}
    assert set(report.pareto) <= {"fp32", static.id}
    assert report.winner_reason
    on_disk = SearchReport.model_validate_json((output / "report.json").read_text())
    assert on_disk == report
    winner = output / report.winner_path
    assert winner.is_file()
    from as_bench.export import load_workload
    from as_core.runtime import RuntimeOptions, onnxruntime_session

    dataset = load_workload("digits-cnn").dataset
    assert dataset is not None
    start = report.calibration_examples
    session = onnxruntime_session(winner, RuntimeOptions(intra_op_threads=1))
    logits = session.run(None, {"input": dataset.inputs[0][start:].astype(np.float32)})[0]
    accuracy = float((logits.argmax(axis=1) == dataset.targets[start:]).mean() * 100)
    baseline_quality = report.baseline.quality
    assert baseline_quality is not None and baseline_quality.accuracy is not None
    assert baseline_quality.accuracy - accuracy <= 1.0


def test_the_report_compares_with_eager_torch_and_checks_parity(
    searched: tuple[SearchReport, Path],
) -> None:
    report, _ = searched
    assert report.calibration_examples == 48
    assert report.scoring_examples == 360 - 48
    parity = report.eager["parity_fp32_onnx"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_error"] < 1e-3
    assert report.eager["latency"]["1"]["median_s"] > 0
    assert report.baseline.speedup_vs_eager is not None


def test_an_output_folder_with_a_report_is_refused(searched: tuple[SearchReport, Path]) -> None:
    _, output = searched
    with pytest.raises(CompressionInputError, match=r"already holds a report\.json"):
        run_search("digits-cnn", output, options=_quick())


def test_quality_gate_parsing_and_defaults() -> None:
    assert QualityGate.parse_points("1pt") == 1.0
    assert QualityGate.parse_points("0.5 pt") == 0.5
    assert QualityGate.parse_points("2") == 2.0
    with pytest.raises(CompressionInputError, match="'lots'"):
        QualityGate.parse_points("lots")
    with pytest.raises(CompressionInputError, match="--min-cosine"):
        QualityGate(min_cosine=1.5)
    assert QualityGate().for_task("classification", True).max_accuracy_drop == 1.0
    assert QualityGate().for_task("embedding", False).min_cosine == 0.99
    with pytest.raises(CompressionInputError, match="--max-accuracy-drop needs a classifier"):
        QualityGate(max_accuracy_drop=1.0).for_task("embedding", False)
    # A size limit alone keeps the task's quality limit beside it.
    sized = QualityGate(max_size_ratio=0.2).for_task("classification", True)
    assert (sized.max_accuracy_drop, sized.max_size_ratio) == (1.0, 0.2)
    assert "size <= 0.2 of the reference's" in sized.describe()
    with pytest.raises(CompressionInputError, match="--max-size"):
        QualityGate(max_size_ratio=0)


def test_a_size_limit_rejects_larger_candidates_with_their_size(tmp_path: Path) -> None:
    from as_optimize.compress import OrtWeightStorage

    report = run_search(
        "digits-cnn",
        tmp_path / "out",
        QualityGate(max_size_ratio=0.3),
        _quick(techniques=[OrtWeightStorage(settings=((8, 0),), embeddings=()), Fp16()]),
    )
    stored = _candidate(report, "ort-weight-storage-8")
    half = _candidate(report, "ort-fp16-io32")
    base = report.baseline.size_bytes
    assert base and stored.size_bytes is not None and half.size_bytes is not None
    assert stored.status == "passed" and stored.size_bytes < 0.3 * base
    assert half.status == "rejected" and half.size_bytes > 0.3 * base
    assert f"its size is {half.size_bytes / base:.3f} of the reference's" in half.reason
    assert "over the 0.3 allowed" in half.reason
    assert report.winner == stored.id


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "digits-cnn", "--max-accuracy-drop", "lots"], "--max-accuracy-drop"),
        (["run", "digits-cnn", "--min-cosine", "2"], "--min-cosine"),
        (["run", "digits-cnn", "--max-size", "-1"], "--max-size"),
        (["run", "digits-cnn", "--target", "cuda"], "--target"),
        (["run", "digits-cnn", "--trials", "0"], "--trials"),
        (["run", "no.such.module:factory"], "no.such.module:factory"),
    ],
)
def test_cli_usage_errors_name_what_is_wrong(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.slow
def test_run_end_to_end_on_the_digits_cnn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    argv = ["run", "digits-cnn", "-o", str(output), "--trials", "3", "--threads", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--max-time", "0.05", "--max-accuracy-drop", "1pt"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    report = json.loads((output / "report.json").read_text())
    tried = [c for c in report["candidates"] if c["status"] != "not applicable"]
    # --trials 3: the first setting of each technique, before any other setting or pipeline.
    assert [c["technique"] for c in tried] == [
        "ort-dynamic-int8",
        "ort-static-int8",
        "ort-fp16",
    ]
    assert report["gate"] == "accuracy drop <= 1 pt"
    assert (output / report["winner_path"]).is_file()
    assert f"winner: {report['winner']}" in captured.out
    assert "eager torch fp32" in captured.out and "fp32" in captured.out
    assert "exporting the fp32 ONNX baseline" in captured.err


FACTORY = """
import torch


def make_mlp():
    torch.manual_seed(0)
    layers = [torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)]
    return torch.nn.Sequential(*layers).eval(), (torch.randn(4, 32),)
"""


def test_a_factory_without_data_is_scored_by_cosine_and_says_what_does_not_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "as_optimize_test_factory.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = run_search(
        "as_optimize_test_factory:make_mlp",
        tmp_path / "out",
        options=_quick(techniques=default_techniques()),
    )
    assert report.gate == "mean cosine vs fp32 >= 0.99"
    assert report.calibration_examples == 0 and report.scoring_examples == 64
    statuses = {c.id: (c.status, c.reason) for c in report.candidates}
    assert statuses["ort-static-int8"] == (
        "not applicable",
        "needs data to calibrate activation ranges; the workload has none",
    )
    # Its Linear layers export as Gemm, which dynamic int8 does not quantize.
    assert statuses["ort-dynamic-int8"][0] == "not applicable"
    assert "Gemm" in statuses["ort-dynamic-int8"][1]
    fp16 = _candidate(report, "ort-fp16-io32")
    assert fp16.quality is not None and fp16.quality.mean_cosine > 0.99
    assert fp16.quality.accuracy is None


def test_a_time_budget_stops_starting_candidates_and_reports_the_rest(tmp_path: Path) -> None:
    # The clock the search reads advances 100 s each time it is read: the first candidate
    # starts at 100 s (within the 250 s budget), the second at 200 s, the third at 300 s
    # is past it, so it and every later one are reported as not tried.
    ticks = iter(range(0, 10_000, 100))
    techniques = [
        OrtStaticInt8(methods=("MinMax",), sizes=(32,), per_channel=(True, False)),
        Fp16(),
    ]
    report = run_search(
        "digits-cnn",
        tmp_path / "out",
        QualityGate(max_accuracy_drop=1.0),
        _quick(techniques=techniques, calibration_examples=32, time_budget_s=250),
        clock=lambda: float(next(ticks)),
    )
    statuses = [c.status for c in report.candidates if c.status != "not applicable"]
    assert len(statuses) == 3
    assert "not tried" not in statuses[:2]
    assert statuses[2] == "not tried"
    left = next(c for c in report.candidates if c.status == "not tried")
    assert "time budget of 250 s" in left.reason and "after 2 candidates" in left.reason
    assert left.id not in report.pareto and report.winner != left.id


def test_a_bad_time_budget_is_refused() -> None:
    with pytest.raises(CompressionInputError, match="--time-budget"):
        _quick(time_budget_s=-1).check()


def test_stages_train_on_the_workloads_training_split_not_on_scored_examples() -> None:
    from as_bench.export import load_workload
    from as_optimize.compress._search import _training

    workload = load_workload("digits-cnn")
    assert workload.train is not None and workload.dataset is not None
    calibration = tuple(a[:32] for a in workload.dataset.inputs)
    data = _training(workload, calibration, 32)
    assert data is not None
    assert len(data) == len(workload.train) > 1000
    assert "training split" in data.name
    np.testing.assert_array_equal(data.inputs[0], workload.train.inputs[0])
    assert data.labels is not None
    np.testing.assert_array_equal(data.labels, workload.train.targets)


def _model(cid: str, median_us: float, size: int) -> Any:
    from as_optimize.compress import CandidateResult
    from as_optimize.compress._search import Latency, Quality

    m = median_us * 1e-6
    return CandidateResult(
        id=cid,
        technique=cid,
        knobs={},
        status="baseline" if cid == "fp32" else "passed",
        reason="",
        size_bytes=size,
        latency={
            "1": Latency(
                median_s=m,
                ci_low_s=m * 0.98,
                ci_high_s=m * 1.02,
                iqr_s=0.0,
                samples=50,
                converged=True,
            )
        },
        quality=Quality(
            mean_cosine=1.0, min_cosine=1.0, max_abs_error=0.0, accuracy=97.0, accuracy_drop=0.0
        ),
    )


def test_the_objective_chooses_the_winner_among_models_that_pass() -> None:
    from as_optimize.compress._search import _pick_winner

    base = _model("fp32", 30.0, 160_000)
    fast = _model("fast-large", 10.0, 80_000)
    tied = _model("fast-small", 10.1, 60_000)  # within the fastest's CI: tied on speed
    small = _model("slow-smallest", 25.0, 20_000)
    models = [base, fast, tied, small]
    by_latency, why = _pick_winner(models, base, "1")
    assert by_latency is tied and "statistically tied" in why
    by_size, why = _pick_winner(models, base, "1", objective="size")
    assert by_size is small and "--objective size" in why and "8.00x smaller" in why
    # Memory: the least of the models whose memory was measured, whatever their size.
    base.memory_bytes, fast.memory_bytes, tied.memory_bytes = 40 << 20, 9 << 20, 30 << 20
    by_memory, why = _pick_winner(models, base, "1", objective="memory")
    assert by_memory is fast and "least memory (9.0 MiB loaded and running)" in why
    assert "of the 3 models" in why  # slow-smallest's memory was not measured
    with pytest.raises(CompressionInputError, match="--objective"):
        _quick(objective="energy").check()


def test_a_factory_that_raises_is_a_clear_usage_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "raising_factory.py").write_text(
        "def make():\n    raise RuntimeError('weights file models/net.pt is missing')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "raising_factory:make", "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "raising_factory:make" in err and "models/net.pt is missing" in err
    assert not (tmp_path / "out").exists()
