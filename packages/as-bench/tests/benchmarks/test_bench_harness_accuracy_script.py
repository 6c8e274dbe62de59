"""Smoke tests of the engine benchmark, ``packages/as-bench/benchmarks/harness_accuracy.py``.

They run the script's own functions on one short path (a calibration and one measurement
per tool, each in its own subprocess, as the comparison does) and check that the results
parse and the tables render; they never judge speed. The pure summaries are checked on
made-up figures, so that the PASS/MISS verdicts are seen to follow the numbers.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "harness_accuracy.py"


@pytest.fixture(scope="module")
def ch() -> Iterator[ModuleType]:
    """The script, imported as a module (it is not a package: benchmarks/ has no __init__)."""
    name = "harness_accuracy_under_test"
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def _calibration(entry_ns: float, noop_ns: float, direct_1ms_s: float) -> dict[str, Any]:
    return {
        "entry_exit_ns": entry_ns,
        "noop_ns": noop_ns,
        "clock_read_ns": 40.0,
        "busy_direct_s": {"busy_10us": 10.2e-6, "busy_1ms": direct_1ms_s, "busy_10ms": 10.001e-3},
    }


def _record(tool: str, workload: str, run: int, median_s: float, wall_s: float) -> dict[str, Any]:
    return {
        "tool": tool,
        "workload": workload,
        "run": run,
        "wall_s": wall_s,
        "median_s": median_s,
        "tool_seconds": wall_s / 2,
        "details": {},
        "error": None,
    }


def test_summaries_and_verdicts_follow_the_figures(ch: ModuleType) -> None:
    cals = [_calibration(100.0, 30.0, 1.0002e-3), _calibration(100.0, 30.0, 1.0004e-3)]
    records = [
        # as-bench: 2% high on the 1 ms busy-wait, spread larger than pyperf's, faster.
        _record("as-bench", "busy_1ms", 0, 1.0201e-3, 1.0),
        _record("as-bench", "busy_1ms", 1, 1.0203e-3, 1.0),
        _record("pyperf", "busy_1ms", 0, 1.0001e-3, 10.0),
        _record("pyperf", "busy_1ms", 1, 1.0001e-3, 12.0),
        _record("as-bench", "noop", 0, 33e-9, 1.0),
        _record("as-bench", "noop", 1, 33e-9, 1.0),
        _record("pyperf", "noop", 0, 45e-9, 10.0),
        {**_record("pyperf", "noop", 1, 0.0, 10.0), "median_s": None, "error": "exit code 1"},
    ]
    summary = ch.summarize_cpu(
        {"calibrations": cals, "records": records}, ["busy_1ms", "noop"], ["as-bench", "pyperf"]
    )
    truth = summary["truth"]["busy_1ms"]["truth_s"]
    assert truth == pytest.approx(1e-3 + 100e-9)
    cells = {(c["tool"], c["workload"]): c for c in summary["accuracy"]}
    a = cells["as-bench", "busy_1ms"]
    assert a["median_s"] == pytest.approx(1.0202e-3)
    assert a["err_truth_pct"] == pytest.approx((1.0202e-3 / truth - 1) * 100)
    assert a["accuracy_pass"] is False
    assert cells["pyperf", "busy_1ms"]["accuracy_pass"] is True
    assert cells["bare loop (reference)", "busy_1ms"]["median_s"] == pytest.approx(1.0003e-3)

    overhead = {r["tool"]: r for r in summary["overhead"]["rows"]}
    assert summary["overhead"]["bare_loop_s"] == pytest.approx(30e-9)
    assert overhead["as-bench"]["ratio"] == pytest.approx(1.1)
    assert overhead["pyperf"]["runs_ok"] == 1  # the failed run is left out, not counted as 0

    versus = {r["workload"]: r for r in summary["versus_pyperf"]["rows"]}
    assert versus["busy_1ms"]["spread_pass"] is False  # pyperf's medians do not vary at all
    assert versus["busy_1ms"]["time_pass"] is True
    assert versus["busy_1ms"]["wall_ratio"] == pytest.approx(1.0 / 11.0)
    assert versus["noop"]["spread_pass"] is None  # one pyperf run: no CV, no verdict

    text = ch.render_cpu(summary, {"runs": 2})
    for expected in ("Table 1", "Table 2", "Table 3", "MISS", "PASS", "busy-wait 1 ms"):
        assert expected in text


def test_gpu_tables_judge_the_ratios(ch: ModuleType) -> None:
    skipped = ch.render_gpu({"skipped": "no CUDA device is visible"})
    assert skipped == "GPU section skipped: no CUDA device is visible."

    def workload(label: str, device_ratio: float, latency_ratio: float) -> dict[str, Any]:
        return {
            "label": label,
            "events_s": 1e-4,
            "sync_clock_s": 1.1e-4,
            "naive_s": 1e-5,
            "as_bench": {"device_time_s": 1e-4, "latency_s": 1e-4, "inner_loops": 500},
            "as_bench_inner_loops_1": {"latency_s": 1.1e-4},
            "device_ratio": device_ratio,
            "latency_ratio": latency_ratio,
            "latency_ratio_inner_loops_1": 1.0,
            "naive_ratio": 0.09,
        }

    gpu = {
        "info": {"device": "Test GPU", "torch": "2.x", "cuda": "12.x"},
        "workloads": {"matmul": workload("mm", 1.01, 0.91), "mlp": workload("mlp", 0.95, 1.0)},
    }
    text = ch.render_gpu(gpu)
    lines = [line.split() for line in text.splitlines()]
    verdicts = [(w[0], w[-1]) for w in lines if w and w[0] in ("matmul", "mlp") and w[-1] != "-"]
    assert verdicts == [("matmul", "PASS"), ("matmul", "MISS"), ("mlp", "MISS"), ("mlp", "PASS")]


@pytest.mark.slow
def test_calibration_and_as_bench_run_in_subprocesses(ch: ModuleType, tmp_path: Path) -> None:
    cal = ch.run_calibration(tmp_path)
    assert 0 < cal["noop_ns"] < cal["entry_exit_ns"]  # a busy-wait call does more than a no-op
    for name, value in cal["busy_direct_s"].items():
        assert value >= ch.WORKLOADS[name].target_s  # a busy-wait never ends early

    rec = ch.run_tool("as-bench", "busy_1ms", 0, tmp_path)
    assert rec["error"] is None, rec["error"]
    assert 1e-3 <= rec["median_s"] < 0.1
    assert rec["details"]["converged"] in (True, False)
    assert rec["wall_s"] > 0

    summary = ch.summarize_cpu(
        {"calibrations": [cal], "records": [rec]}, ["busy_1ms"], ["as-bench"]
    )
    text = ch.render_cpu(summary, {"runs": 1})
    assert "busy-wait 1 ms" in text
    assert "as-bench" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "module", "extra_args"),
    [
        ("pytest-benchmark", "pytest_benchmark", ["--benchmark-max-time=0.05"]),
        # pyperf's defaults take about 15 s; two workers of two values are enough to parse.
        ("pyperf", "pyperf", ["--processes=2", "--values=2", "--min-time=0.01"]),
        ("torch.utils.benchmark", "torch", []),
    ],
)
def test_other_tools_results_parse(
    ch: ModuleType, tmp_path: Path, tool: str, module: str, extra_args: list[str]
) -> None:
    # find_spec, not importorskip: the tool runs in a subprocess, this one need not load it.
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (it comes with `uv run --group bench-compare`)")
    rec = ch.run_tool(tool, "busy_1ms", 0, tmp_path, extra_args=extra_args)
    assert rec["error"] is None, rec["error"]
    assert 1e-3 <= rec["median_s"] < 0.1
