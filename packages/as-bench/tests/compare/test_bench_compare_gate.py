"""The regression gate: thresholds, thresholds files, environment checks, the gate rule.

The two acceptance tests of the gate run on measurements the real engine takes of a
workload with known noise, on fake time (:class:`as_bench.testing.FakeDevice`), so that
the verdicts do not depend on what else the machine is doing: a 20% slowdown injected
into one benchmark fails ``as-bench compare --fail-on median:5%`` naming that benchmark
alone, and 20 reruns of the unchanged workload raise no alarm.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import as_bench
import as_bench.compare as compare
import as_logging
from as_bench.cli import main
from as_bench.compare import (
    Threshold,
    ThresholdSet,
    compare_results,
    environment_differences,
    inconclusive_reason,
    load_side,
    load_thresholds,
    parse_threshold,
)
from as_bench.engine import MeasureOptions
from as_bench.exceptions import NothingToCompareError, ResultStoreError, ThresholdError
from as_bench.measurement import Measurement, TimerKind, TimingSeries, WarmupReport
from as_bench.results import BenchmarkResult, ResultStore, export_results
from as_bench.stats import summarize
from as_bench.testing import FakeDevice

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)

# ----------------------------------------------------------------------------- builders


def _series(samples: Sequence[float], label: str = "wall clock (perf_counter_ns)") -> TimingSeries:
    timer: TimerKind = "cuda_events" if label.startswith("device") else "perf_counter"
    return TimingSeries(label=label, timer=timer, samples_s=list(samples), stats=summarize(samples))


def result(
    name: str,
    samples: Sequence[float],
    *,
    device_samples: Sequence[float] | None = None,
    hardware: dict[str, Any] | None = None,
    threads: dict[str, int | str | None] | None = None,
    at: int = 0,
) -> BenchmarkResult:
    """A result of ``name`` with these samples, finished ``at`` seconds after T0."""
    device_time = None if device_samples is None else _series(device_samples, "device time (x)")
    measurement = Measurement(
        device="cpu",
        latency=_series(samples),
        device_time=device_time,
        cold_start_s=float(max(samples)),
        warmup=WarmupReport(iterations=5, seconds=0.01, stable=True),
        inner_loops=1,
        converged=True,
        stop_reason="test",
        total_seconds=0.5,
        threads=threads if threads is not None else {"requested": None, "OMP_NUM_THREADS": None},
    )
    return BenchmarkResult(
        benchmark=name,
        workload=name.split("/")[0],
        backend="python",
        device="cpu",
        batch_size=1,
        measurement=measurement,
        hardware=hardware if hardware is not None else {},
        started_at=T0 + timedelta(seconds=at),
        finished_at=T0 + timedelta(seconds=at + 1),
    )


def lognormal(median_s: float, n: int = 200, seed: int = 0, sigma: float = 0.05) -> list[float]:
    rng = np.random.default_rng(seed)
    samples: list[float] = (median_s * rng.lognormal(0.0, sigma, n)).tolist()
    return samples


GATE = ThresholdSet.model_validate({"default": ["median:5%"]})

# ----------------------------------------------------------------------------- public API


def test_public_names_are_exact_and_light() -> None:
    assert sorted(compare.__all__) == [
        "BUSY_QUANTILE",
        "BenchmarkComparison",
        "Comparison",
        "NOISY_REL_IQR",
        "Side",
        "Threshold",
        "ThresholdSet",
        "compare_results",
        "environment_differences",
        "inconclusive_reason",
        "load_side",
        "load_thresholds",
        "parse_threshold",
        "read_side",
    ]
    for name in compare.__all__:
        if name.isupper():
            continue  # constants
        assert getattr(compare, name).__module__.startswith("as_bench.compare")
    heavy = "polars torch onnxruntime scipy matplotlib".split()
    code = (
        "import sys, as_bench.compare, as_bench.cli.compare; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("text", "metric", "relative", "absolute_s", "canonical"),
    [
        ("median:5%", "median", 0.05, None, "median:5%"),
        ("p95:10%", "p95", 0.10, None, "p95:10%"),
        ("mean:3%", "mean", 0.03, None, "mean:3%"),
        (" MEDIAN : 2.5 % ", "median", 0.025, None, "median:2.5%"),
        ("median:0%", "median", 0.0, None, "median:0%"),
        ("median:2ms", "median", None, 0.002, "median:2ms"),
        ("p95:250us", "p95", None, 250e-6, "p95:250us"),
        ("p95:250µs", "p95", None, 250e-6, "p95:250us"),
        ("mean:800ns", "mean", None, 800e-9, "mean:800ns"),
        ("median:1.5s", "median", None, 1.5, "median:1.5s"),
        ("median:1500ms", "median", None, 1.5, "median:1.5s"),
        ("median:2MS", "median", None, 0.002, "median:2ms"),
    ],
)
def test_parse_threshold_accepts(
    text: str, metric: str, relative: float | None, absolute_s: float | None, canonical: str
) -> None:
    threshold = parse_threshold(text)
    assert threshold.metric == metric
    assert threshold.relative == (None if relative is None else pytest.approx(relative))
    assert threshold.absolute_s == (None if absolute_s is None else pytest.approx(absolute_s))
    assert str(threshold) == canonical
    assert parse_threshold(str(threshold)) == threshold


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"'' is not a threshold; write METRIC:N%"),
        ("median", r"'median' is not a threshold"),
        ("median:", r"'median:' is not a threshold"),
        ("5%", r"'5%' is not a threshold"),
        ("median:five%", r"'median:five%' is not a threshold"),
        ("p99:5%", r"'p99:5%': unknown metric 'p99'; use median, mean or p95"),
        ("median:-5%", r"'median:-5%': the limit must be a number at least 0"),
        ("median:5", r"'median:5': the limit has no unit; write 5% .* or 5ms"),
        ("median:5kg", r"'median:5kg': unknown unit 'kg'; use %, ns, us, µs, ms or s"),
    ],
)
def test_parse_threshold_refuses_with_the_text_and_the_forms(text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message) as info:
        parse_threshold(text)
    assert isinstance(info.value, ValueError)


def test_threshold_model_takes_expressions_and_wants_one_kind() -> None:
    assert Threshold.model_validate("p95:10%") == Threshold(metric="p95", relative=0.1)
    with pytest.raises(ValidationError, match="exactly one of relative and absolute_s"):
        Threshold(metric="median")
    with pytest.raises(ValidationError, match="exactly one"):
        Threshold(metric="median", relative=0.1, absolute_s=0.1)
    with pytest.raises(ValidationError, match="unknown metric"):
        ThresholdSet.model_validate({"default": ["p50:5%"]})


def test_threshold_set_precedence_exact_then_pattern_then_default() -> None:
    thresholds = ThresholdSet.model_validate(
        {
            "default": ["median:5%"],
            "benchmarks": {
                "mlp/*": ["p95:10%"],
                "mlp/torch/*": "mean:1%",  # never reached for mlp/...: the first pattern wins
                "digits-cnn/tflite/cpu/bs1": ["median:2%"],
                "digits-cnn/*": [],
            },
        }
    )
    assert [str(t) for t in thresholds.for_benchmark("digits-cnn/tflite/cpu/bs1")] == ["median:2%"]
    assert [str(t) for t in thresholds.for_benchmark("mlp/torch/cpu/bs1")] == ["p95:10%"]
    assert thresholds.for_benchmark("digits-cnn/torch/cpu/bs1") == []  # exempt
    assert [str(t) for t in thresholds.for_benchmark("minilm/onnx/cpu/bs8")] == ["median:5%"]
    assert not thresholds.empty
    assert ThresholdSet().empty
    assert ThresholdSet(benchmarks={"x": []}).empty


def test_load_thresholds_yaml(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text(
        "default: [median:5%, 'p95:20%']\n"
        "benchmarks:\n"
        "  'mlp/*': p95:10%\n"
        "  digits-cnn/tflite/cpu/bs1: [median:2%]\n"
        "  'mlp/torch/cpu/bs1': [median:1ms]\n",
        encoding="utf-8",
    )
    thresholds = load_thresholds(path)
    assert [str(t) for t in thresholds.default] == ["median:5%", "p95:20%"]
    assert [str(t) for t in thresholds.for_benchmark("mlp/torch/cpu/bs1")] == ["median:1ms"]
    assert [str(t) for t in thresholds.for_benchmark("mlp/onnx/cpu/bs1")] == ["p95:10%"]
    assert [str(t) for t in thresholds.for_benchmark("digits-cnn/tflite/cpu/bs1")] == ["median:2%"]
    assert [str(t) for t in thresholds.for_benchmark("other")] == ["median:5%", "p95:20%"]


def test_load_thresholds_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "thresholds.toml"
    toml.write_text(
        'default = "median:5%"\n\n[benchmarks]\n"mlp/*" = ["p95:10%"]\n', encoding="utf-8"
    )
    from_toml = load_thresholds(toml)
    as_json = tmp_path / "thresholds.json"
    as_json.write_text(
        json.dumps({"default": ["median:5%"], "benchmarks": {"mlp/*": ["p95:10%"]}}),
        encoding="utf-8",
    )
    assert load_thresholds(as_json) == from_toml
    assert [str(t) for t in from_toml.for_benchmark("mlp/a")] == ["p95:10%"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    assert load_thresholds(empty).empty


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("default: [median:5]\n", r"thresholds.yaml: default\[0\]: 'median:5': the limit has no"),
        (
            "benchmarks:\n  'mlp/*': [median:5%, p99:1%]\n",
            r"thresholds.yaml: benchmarks.mlp/\*\[1\]: 'p99:1%': unknown metric",
        ),
        ("benchmarks:\n  a: median:x\n", r"thresholds.yaml: benchmarks.a: 'median:x' is not"),
        ("benchmarks:\n  a: 5\n", r"thresholds.yaml: benchmarks.a: expected a threshold"),
        ("benchmarks: [a]\n", r"thresholds.yaml: benchmarks: expected a mapping"),
        ("default: [5]\n", r"thresholds.yaml: default\[0\]: expected a threshold expression"),
        ("defaults: [median:5%]\n", r"thresholds.yaml: unknown key\(s\) defaults"),
        ("default: [median:5%\n", r"thresholds file: .*thresholds.yaml"),
    ],
)
def test_load_thresholds_errors_name_file_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ThresholdError, match=message):
        load_thresholds(path)


def test_load_thresholds_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ThresholdError, match=r"thresholds file: .*nope.yaml"):
        load_thresholds(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- environment


def _hardware(**changes: Any) -> dict[str, Any]:
    hardware: dict[str, Any] = {
        "schema_version": 1,
        "collected_at": "2025-06-01T09:00:00Z",
        "os": {
            "system": "Darwin",
            "release": "24.1.0",
            "name": "macOS 15.1 (24B83)",
            "machine": "arm64",
            "platform": "macOS-15.1-arm64-arm-64bit",
        },
        "python": {"version": "3.11.9", "implementation": "CPython", "executable": "/a/python"},
        "cpu": {"model": "Apple M3 Pro", "architecture": "arm64", "logical_cores": 12},
        "memory": {"total_bytes": 36 * 2**30, "available_bytes": 20 * 2**30},
        "apple_silicon": {
            "chip": "Apple M3 Pro",
            "performance_cores": 6,
            "efficiency_cores": 6,
            "gpu": {"name": "Apple M3 Pro", "cores": 18},
            "thermal": {"state": "nominal"},
        },
        "libraries": {"torch": "2.5.1", "onnxruntime": "1.20.1", "mlx": None, "as-bench": "0.1.0"},
        "threads": {"OMP_NUM_THREADS": None},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = hardware
        for key in parents:
            target = target[key]
        target[last] = value
    return hardware


def test_environment_same_machine_is_quiet_despite_fluctuating_fields() -> None:
    base = [result("a", [1.0], hardware=_hardware())]
    new = [
        result(
            "a",
            [1.0],
            hardware=_hardware(
                collected_at="2025-06-02T10:00:00Z",
                memory__available_bytes=3 * 2**30,
                python__executable="/b/other-venv/python",
                python__version="3.11.10",
                apple_silicon__thermal={"state": "nominal", "cpu_speed_limit": 100},
            ),
        )
    ]
    assert environment_differences(base, new) == []


def test_environment_reports_library_chip_and_thread_changes() -> None:
    base = [
        result("a", [1.0], hardware=_hardware(), threads={"requested": None, "torch_intra_op": 8}),
        result("b", [1.0], hardware=_hardware(), threads={"requested": None, "torch_intra_op": 8}),
    ]
    new_hw = _hardware(
        libraries={"torch": "2.6.0", "onnxruntime": "1.20.1", "mlx": "0.22.0", "as-bench": "0.1.0"},
        apple_silicon__chip="Apple M4 Max",
        python__version="3.12.1",
    )
    new = [
        result("a", [1.0], hardware=new_hw, threads={"requested": 4, "torch_intra_op": 4}),
        result("b", [1.0], hardware=new_hw, threads={"requested": None, "torch_intra_op": 8}),
    ]
    lines = environment_differences(base, new)
    assert "Apple Silicon chip: Apple M3 Pro in base, Apple M4 Max in new" in lines
    assert "Python: 3.11 in base, 3.12 in new" in lines
    assert "torch: 2.5.1 in base, 2.6.0 in new" in lines
    assert "mlx: not installed in base, 0.22.0 in new" in lines
    assert (
        "thread settings differ (requested not set in base, 4 in new; "
        "torch_intra_op 8 in base, 4 in new) for a"
    ) in lines
    assert not any("onnxruntime" in line or "collected" in line for line in lines)


def test_environment_notes_missing_records_and_throttling() -> None:
    hot = _hardware(apple_silicon__thermal={"state": "throttled", "cpu_speed_limit": 70})
    lines = environment_differences([result("a", [1.0])], [result("a", [1.0], hardware=hot)])
    assert lines[0].startswith("base has no hardware record")
    assert lines[-1].startswith("new was measured in thermal state throttled (CPU speed limit 70%)")
    assert len(lines) == 2  # nothing is compared against an unknown side


def test_environment_thread_env_var_change() -> None:
    base = [result("a", [1.0], threads={"OMP_NUM_THREADS": None})]
    new = [result("a", [1.0], threads={"OMP_NUM_THREADS": "1"})]
    assert environment_differences(base, new) == [
        "neither side has a hardware record: the machines cannot be compared",
        "thread settings differ (OMP_NUM_THREADS unset in base, 1 in new) for a",
    ]


# ----------------------------------------------------------------------------- the gate rule


def test_significant_regression_beyond_threshold_fails_with_reason() -> None:
    base = [result("slow", lognormal(1e-3, seed=1)), result("same", lognormal(2e-3, seed=2))]
    new = [
        result("slow", lognormal(1.2e-3, seed=3)),
        result("same", lognormal(2e-3, seed=4)),
    ]
    comparison = compare_results(base, new, thresholds=GATE)
    slow, same = comparison.items[1], comparison.items[0]
    assert slow.benchmark == "slow"
    assert slow.failed and slow.change == "regression" and slow.significant
    assert slow.ratio == pytest.approx(1.2, rel=0.03)
    assert slow.ratio_ci_low > 1.1
    assert slow.thresholds == ["median:5%"]
    assert re.fullmatch(
        r"median \+\d+\.\d% \(95% CI \+\d+\.\d% … \+\d+\.\d%\) > 5%, p=\S+", slow.reasons[0]
    ), slow.reasons
    assert not same.failed and same.reasons == []
    assert [item.benchmark for item in comparison.failures] == ["slow"]
    assert comparison.geomean_ratio == pytest.approx(np.sqrt(slow.ratio * same.ratio))
    assert slow.base_n == slow.new_n == 200
    assert slow.base_values["median"] == pytest.approx(slow.base_median_s)


def test_significant_regression_below_threshold_passes() -> None:
    base = [result("a", lognormal(1e-3, n=2000, seed=1, sigma=0.01))]
    new = [result("a", lognormal(1.03e-3, n=2000, seed=2, sigma=0.01))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.change == "regression" and item.significant and item.ratio_ci_low > 1
    assert not item.failed


def test_improvements_never_fail() -> None:
    base = [result("a", lognormal(1e-3, seed=1))]
    new = [result("a", lognormal(0.7e-3, seed=2))]
    strict = ThresholdSet.model_validate(
        {"default": ["median:0%", "mean:0%", "p95:0%", "median:0ns"]}
    )
    item = compare_results(base, new, thresholds=strict).items[0]
    assert item.change == "improvement" and item.significant
    assert not item.failed


def test_a_large_difference_on_too_few_samples_is_not_significant() -> None:
    base = [result("a", [1.0e-3, 3.0e-3, 2.0e-3])]
    new = [result("a", [2.5e-3, 1.5e-3, 3.5e-3])]
    item = compare_results(base, new, thresholds=GATE).items[0]
    # So wide a spread is a busy run: the lower deciles are compared, and three samples
    # cannot pin them down.
    assert item.estimator == "lower decile"
    deciles = [np.quantile(side[0].samples_s, 0.1) for side in (base, new)]
    assert item.ratio == pytest.approx(deciles[1] / deciles[0])
    assert not item.significant and item.change == "unchanged" and not item.failed


def test_small_change_is_unchanged_below_min_effect() -> None:
    base = [result("a", lognormal(1e-3, n=5000, seed=1, sigma=0.005))]
    new = [result("a", lognormal(1.004e-3, n=5000, seed=2, sigma=0.005))]
    item = compare_results(base, new, min_effect=0.01).items[0]
    assert item.significant and item.change == "unchanged"
    assert compare_results(base, new, min_effect=0.001).items[0].change == "regression"


def test_absolute_threshold_uses_the_time_difference() -> None:
    base = [result("a", lognormal(1e-3, seed=1))]
    new = [result("a", lognormal(1.2e-3, seed=2))]  # about +200 µs
    loose = compare_results(
        base, new, thresholds=ThresholdSet.model_validate({"default": ["median:1ms"]})
    )
    assert not loose.items[0].failed
    tight = compare_results(
        base, new, thresholds=ThresholdSet.model_validate({"default": ["median:100us"]})
    )
    assert tight.items[0].failed
    assert re.match(r"median \+\d+ µs \(\+\d+\.\d%, 95% CI", tight.items[0].reasons[0])


def test_p95_threshold_sizes_the_tail() -> None:
    rng = np.random.default_rng(9)
    body = 1e-3 * rng.lognormal(0.0, 0.02, 400)
    base = [result("a", body.tolist())]
    slower = body * 1.03
    slower[rng.permutation(400)[:60]] *= 1.5  # a heavier tail on top of a small shift
    new = [result("a", slower.tolist())]
    comparison = compare_results(
        base, new, thresholds=ThresholdSet.model_validate({"default": ["median:5%", "p95:20%"]})
    )
    item = comparison.items[0]
    assert item.failed
    assert len(item.reasons) == 1 and item.reasons[0].startswith("p95 +")
    assert "(median +" in item.reasons[0]


def test_no_thresholds_gates_nothing() -> None:
    base = [result("a", lognormal(1e-3, seed=1))]
    new = [result("a", lognormal(2e-3, seed=2))]
    item = compare_results(base, new).items[0]
    assert item.change == "regression" and not item.failed and item.thresholds == []
    per_benchmark = ThresholdSet.model_validate({"default": ["median:5%"], "benchmarks": {"a": []}})
    assert not compare_results(base, new, thresholds=per_benchmark).items[0].failed


def test_missing_benchmarks_are_listed_not_failed() -> None:
    base = [result("kept", lognormal(1e-3)), result("gone", lognormal(1e-3))]
    new = [result("kept", lognormal(1e-3, seed=5)), result("added", lognormal(1e-3))]
    comparison = compare_results(base, new, thresholds=GATE)
    assert [item.benchmark for item in comparison.items] == ["kept"]
    assert comparison.only_in_base == ["gone"]
    assert comparison.only_in_new == ["added"]
    assert comparison.failures == []


def test_several_results_of_a_name_use_the_latest_and_warn() -> None:
    base = [result("a", lognormal(1e-3, seed=1))]
    new = [
        result("a", lognormal(2e-3, seed=2), at=50),  # latest: a regression
        result("a", lognormal(1e-3, seed=3), at=10),
    ]
    comparison = compare_results(base, new, thresholds=GATE)
    assert comparison.items[0].failed
    assert any(
        "new holds several results of a (2 results)" in w and "latest" in w
        for w in comparison.environment_warnings
    )


def test_device_time_is_compared_when_both_sides_have_it() -> None:
    base = [result("a", lognormal(2e-3, seed=1), device_samples=lognormal(1e-3, seed=2))]
    new = [result("a", lognormal(2e-3, seed=3), device_samples=lognormal(1.5e-3, seed=4))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.timer == "device time (x)"
    assert item.ratio == pytest.approx(1.5, rel=0.03) and item.failed
    one_sided = compare_results(base, [result("a", lognormal(2e-3, seed=3))])
    assert one_sided.items[0].timer.startswith("wall clock")
    assert any("only one side has device time" in w for w in one_sided.environment_warnings)


def test_gate_settings_are_checked() -> None:
    sides = [result("a", [1.0])]
    with pytest.raises(ThresholdError, match="alpha"):
        compare_results(sides, sides, alpha=1.5)
    with pytest.raises(ThresholdError, match="min_effect"):
        compare_results(sides, sides, min_effect=-0.1)


def test_comparison_round_trips_through_json() -> None:
    base = [result("a", lognormal(1e-3, seed=1))]
    new = [result("a", lognormal(1.3e-3, seed=2))]
    comparison = compare_results(base, new, thresholds=GATE)
    again = type(comparison).model_validate_json(comparison.model_dump_json())
    assert again == comparison
    assert again.failures[0].benchmark == "a"


# ----------------------------------------------------------------------------- reading sides


def test_load_side_reads_stores_and_every_export(tmp_path: Path) -> None:
    results = [
        result("a", lognormal(1e-3, seed=1), at=0),
        result("b", lognormal(2e-3, seed=2), device_samples=lognormal(1e-3, seed=3), at=5),
    ]
    store = ResultStore(tmp_path / "store")
    for r in results:
        store.append(r)
    assert load_side(store.root) == results
    for suffix in (".json", ".csv", ".parquet"):
        path = export_results(results, tmp_path / f"export{suffix}")
        loaded = load_side(path)
        assert [r.benchmark for r in loaded] == ["a", "b"]
        assert [r.samples_s for r in loaded] == [r.samples_s for r in results]
        comparison = compare_results(results, loaded, thresholds=GATE)
        assert [item.ratio for item in comparison.items] == [1.0, 1.0]
        assert comparison.items[1].timer.startswith("device time")
        if suffix != ".json":
            assert loaded[0].measurement.warnings[0].startswith(f"rebuilt from export{suffix}")


def test_load_side_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultStoreError, match=r"no results at .*missing"):
        load_side(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResultStoreError, match=r"no results in .*empty.*nothing to compare"):
        load_side(empty)
    store = ResultStore(tmp_path / "store")
    store.append(result("a", [1.0]))
    (store.root / "20250101T000000000000Z-bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ResultStoreError, match=r"bad\.json"):
        load_side(store.root)
    odd = tmp_path / "results.txt"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(ResultStoreError, match="suffix"):
        load_side(odd)


# ----------------------------------------------------------------------------- on measurements
#
# Calls of about 150-300 µs, each ±10% (uniform, from a seeded RNG), and every run as a
# whole up to ±1% slower or faster than another (a machine's state drifts between runs),
# on a FakeDevice: fake time, so a busy machine cannot turn noise into a regression. One
# call per sample and 0.1 s of sampling: a few hundred samples per benchmark, measured by
# the real engine, the same code for the baseline, the slowed candidate and every rerun.

SPIN_S = {"spin/150us": 150e-6, "spin/200us": 200e-6, "spin/300us": 300e-6}
SLOWED = "spin/200us"
OPTIONS = MeasureOptions.quick(
    inner_loops=1,
    min_time_s=0.1,
    max_time_s=0.1,
    warmup_max_time_s=0.05,
    track_memory=False,
)


def spin() -> None:
    """The measured call: what it costs is the FakeDevice's ``spin_cost``."""


def spin_cost(seconds: float, rng: random.Random) -> Callable[[int], float]:
    """``seconds`` ±10% (uniform) per call: a CPU-bound call with known noise."""
    return lambda _: seconds * rng.uniform(0.9, 1.1)


def measure_suite(
    store: Path, seed: int, hardware: dict[str, Any], slowdown: dict[str, float] | None = None
) -> Path:
    """Measure every spin benchmark into a result store; ``slowdown`` scales some."""
    results = ResultStore(store)
    drift = random.Random(seed).uniform(0.99, 1.01)
    for index, (name, seconds) in enumerate(SPIN_S.items()):
        factor = (slowdown or {}).get(name, 1.0) * drift
        started = datetime.now(UTC)
        cost = spin_cost(seconds * factor, random.Random(seed * 100 + index))
        measurement = as_bench.measure(spin, device=FakeDevice(cost), options=OPTIONS)
        results.append(
            BenchmarkResult(
                benchmark=name,
                workload="spin",
                backend="python",
                device="cpu",
                batch_size=1,
                measurement=measurement,
                hardware=hardware,
                started_at=started,
                finished_at=datetime.now(UTC),
            )
        )
    return store


@pytest.fixture(scope="module")
def hardware() -> dict[str, Any]:
    """This machine, probed once, as the runner records it in every result."""
    return as_bench.probe_hardware().model_dump(mode="json")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, hardware: dict[str, Any]) -> Path:
    return measure_suite(tmp_path_factory.mktemp("compare") / "baseline", 0, hardware)


@pytest.fixture
def _reset_logging() -> Iterator[None]:
    yield
    as_logging.reset()  # the CLI configures logging, as an application does; undo it


def _compare(base: Path, new: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(base), str(new), "--fail-on", "median:5%"])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def _regressions(output: str) -> list[str]:
    return re.findall(r"^REGRESSION (\S+): ", output, flags=re.MULTILINE)


@pytest.mark.usefixtures("_reset_logging")
def test_injected_20_percent_slowdown_fails_naming_that_benchmark(
    baseline: Path, hardware: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = measure_suite(tmp_path / "new", 1, hardware, slowdown={SLOWED: 1.2})
    code, output = _compare(baseline, new, capsys)
    assert code == 1, output
    assert _regressions(output) == [SLOWED], output
    line = next(line for line in output.splitlines() if line.startswith("REGRESSION"))
    # Quiet runs are judged on the median, busy ones (a shared test machine) on the
    # lower decile; either way the change measured is the one injected.
    quiet = r": median \+(1[5-9]|2[0-5])\.\d% \(95% CI .*\) > 5%, p="
    busy = r": lower decile \+(1[5-9]|2[0-5])\.\d% \(95% CI .*\) > 5% \(median:5% on a busy"
    assert re.search(quiet, line) or re.search(busy, line), line


@pytest.mark.slow
@pytest.mark.usefixtures("_reset_logging")
def test_20_reruns_of_the_unchanged_workload_raise_no_false_alarm(
    baseline: Path, hardware: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alarms: list[str] = []
    for rerun in range(20):
        new = measure_suite(tmp_path / f"rerun-{rerun}", 2 + rerun, hardware)
        code, output = _compare(baseline, new, capsys)
        assert code in (0, 1), output
        if code != 0:
            alarms.append(f"rerun {rerun}: {_regressions(output)}\n{output}")
    assert not alarms, "\n".join(alarms)


def _busy(median_s: float, *, share: float, n: int = 600, seed: int = 0) -> list[float]:
    """Samples of a call of ``median_s`` on a busy machine: a ``share`` of them waited
    for a core (2 to 6 times as long), as other processes' time slices make them."""
    rng = np.random.default_rng(seed)
    body = median_s * rng.lognormal(0.0, 0.01, n)
    waited = rng.random(n) < share
    samples: list[float] = np.where(waited, body * rng.uniform(2.0, 6.0, n), body).tolist()
    return samples


def test_unchanged_code_on_a_busier_new_run_passes() -> None:
    # The median of the new run is inflated by other processes (60% of its samples
    # waited, against 10% of the base's): the old rule did not pass it.
    base = [result("f", _busy(1e-3, share=0.10, seed=1))]
    new = [result("f", _busy(1e-3, share=0.60, seed=2))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert new[0].median_s / base[0].median_s > 1.2, "the medians do differ"
    assert item.busy and item.estimator == "lower decile"
    assert item.ratio == pytest.approx(1.0, abs=0.01)
    assert not item.failed and not item.inconclusive and item.reasons == []


def test_a_regression_on_a_busy_run_fails_on_the_lower_decile() -> None:
    # A 10% slower function on a busy machine, its base measured when it was less busy:
    # the medians barely differ (the base's is not inflated), the lower deciles do.
    base = [result("f", _busy(1e-3, share=0.10, seed=1))]
    new = [result("f", _busy(1.1e-3, share=0.45, seed=2))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.failed and not item.inconclusive
    assert item.ratio == pytest.approx(1.1, abs=0.01) and item.ratio_ci_low > 1.05
    assert re.fullmatch(
        r"lower decile \+\d+\.\d% \(95% CI \+\d+\.\d% … \+\d+\.\d%\) > 5% "
        r"\(median:5% on a busy run\)",
        item.reasons[0],
    ), item.reasons


def test_a_wide_spread_regression_still_fails() -> None:
    # A noisy measurement never turns a clear regression into a pass: the whole new
    # distribution sits above the base's (+76% at the median, IQR 40% of it).
    base = [result("ort/bs16", lognormal(25e-6, sigma=0.02))]
    new = [result("ort/bs16", lognormal(44e-6, seed=1, sigma=0.3))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.failed and not item.inconclusive
    assert item.noisy == [
        f"the new run's IQR is {new[0].measurement.latency.stats.relative_iqr:.0%} of its median"
    ]


def test_a_busy_regression_without_evidence_is_inconclusive() -> None:
    base = [result("ort/bs16", lognormal(25e-6, n=20, sigma=0.3, seed=1))]
    new = [result("ort/bs16", lognormal(28e-6, n=20, sigma=0.3, seed=11))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.ratio > 1.05 and item.ratio_ci_low < 1.0
    assert item.inconclusive and not item.failed


def test_a_tail_threshold_on_a_busy_run_is_inconclusive_when_only_the_tail_moved() -> None:
    base = [result("f", _busy(1e-3, share=0.05, seed=1))]
    new = [result("f", _busy(1e-3, share=0.30, seed=2))]
    tail = ThresholdSet.model_validate({"default": ["p95:10%"]})
    item = compare_results(base, new, thresholds=tail).items[0]
    assert item.inconclusive and not item.failed
    assert "only the tail moved" in item.reasons[0]


def test_inconclusive_reason_gives_the_noise_against_its_limit() -> None:
    base = [result("ort/bs16", lognormal(25e-6, n=20, sigma=0.3, seed=1))]
    new = [result("ort/bs16", lognormal(28e-6, n=20, sigma=0.3, seed=11))]
    comparison = compare_results(base, new, thresholds=GATE)
    assert comparison.inconclusive == comparison.items and comparison.failures == []
    iqrs = [side[0].measurement.latency.stats.relative_iqr for side in (base, new)]
    text = inconclusive_reason(comparison.items[0])
    assert text.startswith("lower decile +")
    assert text.endswith(
        f"; a busy run (the base run's IQR is {iqrs[0]:.0%} of its median and the new run's "
        f"IQR is {iqrs[1]:.0%} of its median, over 10%) and the evidence does not settle it: "
        "rerun it, on a quieter machine if you can"
    )


def test_a_missing_or_empty_side_is_nothing_to_compare(tmp_path: Path) -> None:
    with pytest.raises(NothingToCompareError, match="no results at"):
        load_side(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NothingToCompareError, match="nothing to compare"):
        load_side(tmp_path / "empty")


def test_a_regression_on_quiet_runs_still_fails() -> None:
    base = [result("ort/bs16", lognormal(25e-6, sigma=0.02))]
    new = [result("ort/bs16", lognormal(44e-6, seed=1, sigma=0.02))]
    item = compare_results(base, new, thresholds=GATE).items[0]
    assert item.failed and not item.inconclusive and item.noisy == []
