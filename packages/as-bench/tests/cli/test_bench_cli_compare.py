"""``as-bench compare``: the table, --json, thresholds files and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import as_logging
from as_bench.cli import main
from as_bench.cli.compare import (
    EXIT_INCONCLUSIVE,
    EXIT_NOTHING_COMPARED,
    EXIT_PASSED,
    EXIT_REGRESSION,
    EXIT_USAGE,
    run_compare,
    threshold_set,
)
from as_bench.measurement import Measurement, TimingSeries, WarmupReport
from as_bench.results import BenchmarkResult, ResultStore, export_results
from as_bench.stats import summarize
from as_bench.testing import lognormal_samples, make_result


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    as_logging.reset()  # the CLI configures logging, as an application does; undo it


def _result(name: str, median_s: float, seed: int, torch: str = "2.5.1") -> BenchmarkResult:
    samples = (median_s * np.random.default_rng(seed).lognormal(0.0, 0.04, 150)).tolist()
    series = TimingSeries(
        label="wall clock (perf_counter_ns)",
        timer="perf_counter",
        samples_s=samples,
        stats=summarize(samples),
    )
    started = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(minutes=seed)
    return BenchmarkResult(
        benchmark=name,
        workload=name.split("/")[0],
        backend="torch",
        device="cpu",
        batch_size=1,
        measurement=Measurement(
            device="cpu",
            latency=series,
            cold_start_s=samples[0],
            warmup=WarmupReport(iterations=3, seconds=0.01, stable=True),
            inner_loops=1,
            converged=True,
            stop_reason="CI within target",
            total_seconds=0.3,
            threads={"requested": None, "torch_intra_op": 4},
        ),
        hardware={"cpu": {"model": "Test CPU"}, "libraries": {"torch": torch}},
        started_at=started,
        finished_at=started + timedelta(seconds=1),
    )


def _store(folder: Path, medians: dict[str, float], seed: int, torch: str = "2.5.1") -> Path:
    store = ResultStore(folder)
    for index, (name, median_s) in enumerate(medians.items()):
        store.append(_result(name, median_s, seed * 10 + index, torch))
    return folder


BASE = {"mlp/torch/cpu/bs1": 1e-3, "digits-cnn/torch/cpu/bs1": 2e-3, "minilm/torch/cpu/bs1": 5e-3}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return _store(tmp_path / "base", BASE, seed=1)


def test_regression_fails_and_is_named(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _store(tmp_path / "new", {**BASE, "mlp/torch/cpu/bs1": 1.25e-3}, seed=2)
    code, out, err = _run(["compare", str(base), str(new), "--fail-on", "median:5%"], capsys)
    assert code == 1, out + err
    regressions = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    assert len(regressions) == 1
    assert regressions[0].startswith("REGRESSION mlp/torch/cpu/bs1: median +")
    assert "> 5%, p=" in regressions[0]
    assert "FAILED: 1 benchmark(s) regressed" in out
    assert "geometric mean ratio (new/base) over 3 benchmark(s)" in out
    assert err == ""


def test_improvements_and_unchanged_pass(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faster = {**BASE, "mlp/torch/cpu/bs1": 0.6e-3, "minilm/torch/cpu/bs1": 3e-3}
    new = _store(tmp_path / "new", faster, seed=3)
    argv = ["compare", str(base), str(new), "--fail-on", "median:5%", "--fail-on", "p95:10%"]
    code, out, _ = _run(argv, capsys)
    assert code == 0, out
    assert "improvement" in out
    assert "REGRESSION" not in out
    assert "passed: no significant regression beyond the thresholds" in out


def test_without_thresholds_nothing_fails(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _store(tmp_path / "new", {k: v * 2 for k, v in BASE.items()}, seed=4)
    code, out, _ = _run(["compare", str(base), str(new)], capsys)
    assert code == 0
    assert "regression" in out
    assert "no thresholds: nothing gated" in out


def test_json_output_is_the_comparison_alone(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _store(tmp_path / "new", {**BASE, "digits-cnn/torch/cpu/bs1": 2.6e-3}, seed=5)
    argv = ["compare", str(base), str(new), "--fail-on", "median:5%", "--json"]
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert err == ""
    data = json.loads(out)
    assert set(data) == {
        "items",
        "only_in_base",
        "only_in_new",
        "geomean_ratio",
        "environment_warnings",
        "alpha",
        "min_effect",
    }
    failed = [item["benchmark"] for item in data["items"] if item["failed"]]
    assert failed == ["digits-cnn/torch/cpu/bs1"]
    item = next(i for i in data["items"] if i["failed"])
    assert item["thresholds"] == ["median:5%"]
    assert item["change"] == "regression"
    assert item["ratio_ci_low"] > 1
    assert set(item["base_values"]) == {"median", "mean", "p95", "p10"}
    assert data["alpha"] == 0.05


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("median:5", "'median:5': the limit has no unit"),
        ("p99:5%", "unknown metric 'p99'"),
        ("fast", "'fast' is not a threshold"),
    ],
)
def test_bad_fail_on_exits_2_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expression: str, message: str
) -> None:
    # The sides do not even exist: the expression is checked first.
    argv = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on", expression]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert message in err
    assert "(hint: thresholds look like median:5%, mean:3%, p95:10% or median:2ms)" in err
    assert out == ""


def test_bad_alpha_exits_2(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["compare", str(base), str(base), "--alpha", "2"], capsys)
    assert code == 2
    assert "alpha must be between 0 and 1" in err
    assert "(hint: the usual significance level is 0.05)" in err


def test_unreadable_sides_exit_with_the_reason(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Missing or empty: nothing to compare (4); a corrupt file: a failure (1).
    code, _, err = _run(["compare", str(base), str(tmp_path / "nowhere")], capsys)
    assert code == EXIT_NOTHING_COMPARED
    assert "no results at" in err and "nowhere" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["compare", str(empty), str(base)], capsys)
    assert code == EXIT_NOTHING_COMPARED
    assert "nothing to compare" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1', encoding="utf-8")
    code, _, err = _run(["compare", str(base), str(broken)], capsys)
    assert code == 1
    assert "broken.json" in err


def test_thresholds_file_overrides_per_benchmark(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # +12% on mlp, +12% on digits-cnn: the file lets mlp through at 20% and keeps 5% else.
    slower = {**BASE, "mlp/torch/cpu/bs1": 1.12e-3, "digits-cnn/torch/cpu/bs1": 2.24e-3}
    new = _store(tmp_path / "new", slower, seed=6)
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(
        "default: [median:5%]\nbenchmarks:\n  'mlp/*': [median:20%]\n", encoding="utf-8"
    )
    code, out, _ = _run(["compare", str(base), str(new), "--thresholds", str(thresholds)], capsys)
    assert code == 1
    named = [line.split(":")[0] for line in out.splitlines() if line.startswith("REGRESSION")]
    assert named == ["REGRESSION digits-cnn/torch/cpu/bs1"]
    # --fail-on replaces the file's default; the file's overrides still apply.
    argv = ["compare", str(base), str(new), "--thresholds", str(thresholds)]
    code, out, _ = _run([*argv, "--fail-on", "median:15%"], capsys)
    assert code == 0, out


def test_bad_thresholds_file_exits_2(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text('[benchmarks]\n"mlp/*" = ["median:fast"]\n', encoding="utf-8")
    code, _, err = _run(["compare", str(base), str(base), "--thresholds", str(thresholds)], capsys)
    assert code == 2
    assert "thresholds.toml: benchmarks.mlp/*[0]: 'median:fast' is not a threshold" in err


def test_environment_warnings_come_above_the_table(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _store(tmp_path / "new", BASE, seed=7, torch="2.6.0")
    code, out, _ = _run(["compare", str(base), str(new), "--fail-on", "median:5%"], capsys)
    assert code == 0
    lines = out.splitlines()
    warning = lines.index("warning: torch: 2.5.1 in base, 2.6.0 in new")
    assert warning < next(i for i, line in enumerate(lines) if "as-bench compare" in line)


def test_missing_benchmarks_are_shown_not_gated(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fewer = {k: v for k, v in BASE.items() if not k.startswith("minilm")}
    new = _store(tmp_path / "new", {**fewer, "new-one/torch/cpu/bs1": 1e-3}, seed=8)
    code, out, _ = _run(["compare", str(base), str(new), "--fail-on", "median:5%"], capsys)
    assert code == 0
    assert "base only" in out and "new only" in out
    assert "2 benchmark(s) are on one side only: reported, not gated" in out


def test_exports_compare_like_stores(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = ResultStore(base, create=False).load()
    export = export_results(results, tmp_path / "base.parquet")
    code, out, _ = _run(["compare", str(export), str(base), "--fail-on", "median:1%"], capsys)
    assert code == 0, out
    assert "warning: new has no hardware record" not in out
    assert "warning: base has no hardware record" in out


def test_run_compare_directly_and_threshold_set(base: Path, tmp_path: Path) -> None:
    new = _store(tmp_path / "new", {**BASE, "minilm/torch/cpu/bs1": 6e-3}, seed=9)
    console = Console(record=True, width=120)
    code = run_compare(
        base,
        new,
        fail_on=["median:5%,p95:10%"],
        thresholds=None,
        alpha=0.05,
        min_effect=0.01,
        json_output=False,
        console=console,
    )
    assert code == 1
    assert "REGRESSION minilm/torch/cpu/bs1:" in console.export_text()
    assert threshold_set([], None) is None
    gates = threshold_set(["median:5%,p95:10%"], None)
    assert gates is not None
    assert [str(t) for t in gates.default] == ["median:5%", "p95:10%"]


# ------------------------------------------------------------------- exit statuses


def test_exit_statuses_are_distinct_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    codes = [EXIT_PASSED, EXIT_REGRESSION, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_NOTHING_COMPARED]
    assert codes == [0, 1, 2, 3, 4]
    code, out, _ = _run(["compare", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "Exit status: 0 passed; 1 a significant regression" in text
    assert "3 inconclusive" in text and "4 nothing compared" in text
    assert "--allow-inconclusive" in text


def _export(path: Path, name: str, samples: list[float]) -> Path:
    export_results([make_result(name, samples)], path)
    return path


@pytest.fixture
def noisy_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A +12% regression measured on two busy runs of 20 samples each (IQR about 40% of
    the median): the lower decile moved beyond 5%, but its interval reaches 1."""
    busy = lognormal_samples(25e-6, n=20, sigma=0.3, seed=1)
    base = _export(tmp_path / "base.json", "ort/bs16", busy)
    noisy = lognormal_samples(28e-6, n=20, seed=11, sigma=0.3)
    return base, _export(tmp_path / "new.json", "ort/bs16", noisy)


def test_an_inconclusive_gate_exits_3_with_the_noise_and_its_limit(
    noisy_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = noisy_pair
    code, out, err = _run(["compare", str(base), str(new), "--fail-on", "median:5%"], capsys)
    assert code == EXIT_INCONCLUSIVE, out + err
    line = next(line for line in out.splitlines() if line.startswith("INCONCLUSIVE ort"))
    assert "a busy run (the base run's IQR is" in line
    assert "of its median, over 10%) and the evidence does not settle it: rerun it" in line
    assert "INCONCLUSIVE: 1 benchmark(s) regressed beyond their thresholds" in out
    assert "passed" not in out


def test_allow_inconclusive_exits_0_and_still_prints_the_verdict(
    noisy_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = noisy_pair
    argv = ["compare", str(base), str(new), "--fail-on", "median:5%", "--allow-inconclusive"]
    code, out, err = _run(argv, capsys)
    assert code == EXIT_PASSED, out + err
    assert "INCONCLUSIVE ort/bs16: lower decile +" in out
    assert "accepted: 1 inconclusive benchmark(s) (--allow-inconclusive)" in out


def test_a_regression_beside_an_inconclusive_one_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = lognormal_samples(25e-6, sigma=0.02)
    busy = lognormal_samples(25e-6, n=20, sigma=0.3, seed=1)
    base = [make_result("ort/bs16", busy), make_result("mlp/bs1", quiet)]
    new = [
        make_result("ort/bs16", lognormal_samples(28e-6, n=20, seed=11, sigma=0.3)),
        make_result("mlp/bs1", lognormal_samples(40e-6, seed=2, sigma=0.02)),
    ]
    export_results(base, tmp_path / "base.json")
    export_results(new, tmp_path / "new.json")
    argv = ["compare", str(tmp_path / "base.json"), str(tmp_path / "new.json")]
    code, out, _ = _run([*argv, "--fail-on", "median:5%"], capsys)
    assert code == EXIT_REGRESSION, out
    assert "REGRESSION mlp/bs1" in out and "INCONCLUSIVE ort/bs16" in out


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
def test_no_benchmark_in_common_exits_4_naming_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gated: bool
) -> None:
    base = _export(tmp_path / "base.json", "mlp/bs1", lognormal_samples(1e-3))
    new = _export(tmp_path / "new.json", "mlp/bs2", lognormal_samples(1e-3, seed=1))
    argv = ["compare", str(base), str(new)] + (["--fail-on", "median:5%"] if gated else [])
    code, out, err = _run(argv, capsys)
    assert code == EXIT_NOTHING_COMPARED, out + err
    assert "passed" not in out
    assert "error: nothing compared:" in err
    assert "base.json" in err and "new.json" in err
    assert "base: mlp/bs1; new: mlp/bs2" in err
