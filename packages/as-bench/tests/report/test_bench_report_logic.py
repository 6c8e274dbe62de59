"""The report's reasoning: the recommendation and the Apple Silicon insights.

The results here are synthetic inputs built to exercise the logic: their samples are
constructed (statistics computed by the real ``summarize``), and the Apple Silicon
hardware records come from the probe's own parsers run on outputs captured from real
Macs (``fixtures/macos``), combined with the facts each test needs (low-power mode on,
a throttled thermal state) that no captured output shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_bench.measurement import Measurement, MemoryReport, TimingSeries, WarmupReport
from as_bench.probe import (
    AppleSiliconInfo,
    CpuInfo,
    HardwareInfo,
    MemoryInfo,
    OsInfo,
    PythonInfo,
    apple_silicon_from,
    parse_pmset_lowpowermode,
    parse_pmset_therm,
    parse_sysctl,
    parse_system_profiler_hardware,
)
from as_bench.report import (
    ACCURACY_TOLERANCE,
    Insight,
    apple_silicon_insights,
    recommend,
)
from as_bench.results import BenchmarkResult, OutputCheck
from as_bench.stats import summarize

FIXTURES = Path(__file__).parents[1] / "fixtures" / "macos"
T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
GiB = 2**30


def samples(center: float, spread: float, n: int = 61) -> list[float]:
    """``n`` samples spread evenly (±spread, relative) around ``center``, shuffled."""
    values = center * (1 + spread * np.linspace(-1.0, 1.0, n))
    shuffled: list[float] = np.random.default_rng(7).permutation(values).tolist()
    return shuffled


def make(
    backend: str,
    center: float,
    *,
    spread: float = 0.01,
    device: str = "cpu",
    batch: int = 1,
    workload: str = "mlp",
    accuracy: float | None = 0.97,
    passed: bool | None = True,
    hardware: dict[str, Any] | None = None,
    threads: dict[str, int | str | None] | None = None,
    backend_info: dict[str, Any] | None = None,
    memory: MemoryReport | None = None,
    age_s: int = 0,
) -> BenchmarkResult:
    latency = samples(center, spread)
    measurement = Measurement(
        device=device,
        latency=TimingSeries(
            label="latency (synchronised wall clock)",
            timer="perf_counter",
            samples_s=latency,
            stats=summarize(latency),
        ),
        cold_start_s=center * 5,
        warmup=WarmupReport(iterations=5, seconds=0.01, stable=True),
        inner_loops=1,
        converged=True,
        stop_reason="converged",
        total_seconds=1.0,
        memory=memory or MemoryReport(host_peak_rss_bytes=300 * 2**20),
        threads=threads or {},
    )
    check = None
    if passed is not None:
        check = OutputCheck(
            reference_backend="torch",
            max_abs_error=1e-7 if passed else 0.5,
            max_rel_error=1e-6 if passed else 0.9,
            passed=passed,
            tolerance=1e-4,
            failures=[] if passed else ["max abs error 0.5 > 1e-4"],
        )
    started = T0 - timedelta(seconds=age_s)
    return BenchmarkResult(
        benchmark=f"{workload}/{backend}/{device}/bs{batch}",
        workload=workload,
        backend=backend,
        device=device,
        batch_size=batch,
        measurement=measurement,
        throughput_items_per_s=batch / float(np.median(latency)),
        accuracy=None if accuracy is None else {"accuracy": accuracy},
        output_check=check,
        backend_info=backend_info or {},
        hardware=hardware or {},
        started_at=started,
        finished_at=started + timedelta(seconds=1),
    )


# --- recommendation -------------------------------------------------------------------


def test_the_fastest_correct_configuration_wins_and_is_not_tied() -> None:
    results = [
        make("torch", 2e-3),
        make("onnxruntime", 1e-3),
        make("torch-compile", 1.5e-3),
    ]
    [rec] = recommend(results)
    assert rec.choice is not None and rec.choice.backend == "onnxruntime"
    assert rec.runner_up is not None and rec.runner_up.backend == "torch-compile"
    assert not rec.tied
    assert "1.50x faster than the runner-up torch-compile on cpu" in rec.summary
    assert "statistically tied" not in rec.summary
    # The evidence quotes the median with its CI, the accuracy and the output check.
    assert "95% CI" in rec.summary
    assert any(line.startswith("accuracy 0.97") for line in rec.evidence)
    assert any("output check passed vs torch" in line for line in rec.evidence)


def test_a_faster_backend_with_a_failed_output_check_is_not_recommended() -> None:
    results = [make("torch", 2e-3), make("tflite", 0.5e-3, passed=False)]
    [rec] = recommend(results)
    assert rec.choice is not None and rec.choice.backend == "torch"
    assert rec.runner_up is None
    [(name, why)] = rec.excluded
    assert name == "mlp/tflite/cpu/bs1" and "FAILED" in why
    assert any("not recommended: mlp/tflite/cpu/bs1" in line for line in rec.evidence)


def test_a_faster_backend_with_worse_accuracy_is_not_recommended() -> None:
    worse = 0.97 - ACCURACY_TOLERANCE - 0.001
    slightly = 0.97 - ACCURACY_TOLERANCE / 2  # within the tolerance: still a candidate
    results = [
        make("torch", 3e-3),
        make("coreml", 0.5e-3, accuracy=worse),
        make("onnxruntime", 1e-3, accuracy=slightly),
    ]
    [rec] = recommend(results)
    assert rec.choice is not None and rec.choice.backend == "onnxruntime"
    assert rec.best_accuracy == pytest.approx(0.97)
    assert [name for name, _ in rec.excluded] == ["mlp/coreml/cpu/bs1"]
    assert "below the best" in rec.excluded[0][1]


def test_overlapping_confidence_intervals_are_statistically_tied() -> None:
    # Medians 1% apart with ±10% spread: the CIs of the medians overlap.
    results = [make("torch", 1.01e-3, spread=0.1), make("onnxruntime", 1.0e-3, spread=0.1)]
    [rec] = recommend(results)
    assert rec.choice is not None and rec.runner_up is not None
    assert rec.choice.overlaps(rec.runner_up)
    assert rec.tied
    assert "statistically tied with" in rec.summary


def test_one_recommendation_per_batch_size_and_the_throughput_leader_marked() -> None:
    results = [
        make("torch", 1e-3, batch=1),
        make("onnxruntime", 2e-3, batch=1),
        make("torch", 9e-3, batch=32),
        make("onnxruntime", 4e-3, batch=32),
    ]
    recs = recommend(results)
    assert [(r.batch_size, r.choice.backend if r.choice else None) for r in recs] == [
        (1, "torch"),
        (32, "onnxruntime"),
    ]
    assert [r.best_throughput for r in recs] == [False, True]


def test_nothing_qualifies_and_repeated_runs_count_once() -> None:
    failing = [make("torch", 1e-3, passed=False)]
    [rec] = recommend(failing)
    assert rec.choice is None and "nothing to recommend" in rec.summary
    # An older, faster run of the same benchmark is superseded by the latest one.
    old = make("onnxruntime", 0.1e-3, age_s=3600)
    new = make("onnxruntime", 2e-3)
    [rec] = recommend([old, new, make("torch", 1e-3)])
    assert rec.choice is not None and rec.choice.backend == "torch"
    assert rec.runner_up is not None and rec.runner_up.median_s == pytest.approx(2e-3)


def test_results_without_checks_or_accuracy_still_qualify() -> None:
    [rec] = recommend([make("mlx", 1e-3, accuracy=None, passed=None)])
    assert rec.choice is not None
    assert "accuracy not evaluated" in rec.evidence
    assert "output check not checked" in rec.evidence


# --- Apple Silicon insights -----------------------------------------------------------


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def mac(apple: AppleSiliconInfo, physical_cores: int | None = None) -> dict[str, Any]:
    """A hardware record around the Apple part the probe's parsers produced."""
    info = HardwareInfo(
        collected_at=T0,
        os=OsInfo(
            system="Darwin",
            release="24.1.0",
            name="macOS 15.1",
            machine="arm64",
            platform="macOS-15.1-arm64-arm-64bit",
        ),
        python=PythonInfo(version="3.11.9", implementation="CPython", executable="python"),
        cpu=CpuInfo(model=apple.chip, architecture="arm64", physical_cores=physical_cores),
        memory=MemoryInfo(total_bytes=apple.unified_memory_bytes or 8 * GiB),
        apple_silicon=apple,
    )
    return info.model_dump(mode="json")


def m4_max(**changes: Any) -> AppleSiliconInfo:
    """The M4 Max of the fixtures (12 P + 4 E cores), nominal heat, low-power mode off."""
    info = apple_silicon_from(
        sysctl=parse_sysctl(read("m4-max-sysctl-hw-machdep.txt")),
        hardware=parse_system_profiler_hardware(
            read("m4-max-system_profiler-SPHardwareDataType.json")
        ),
        thermal=parse_pmset_therm(read("m1-pro-pmset-therm.txt")),
        low_power_mode=parse_pmset_lowpowermode(read("apple-silicon-unknown-chip-pmset-g.txt")),
    )
    assert info is not None
    return info.model_copy(update=changes)


def texts(insights: list[Insight], topic: str, level: str | None = None) -> list[str]:
    return [i.text for i in insights if i.topic == topic and (level is None or i.level == level)]


def test_torch_threads_above_the_performance_cores_warn() -> None:
    apple = m4_max()
    assert (apple.performance_cores, apple.efficiency_cores) == (12, 4)
    hardware = mac(apple, physical_cores=16)
    results = [
        make("torch", 1e-3, hardware=hardware, threads={"torch_intra_op": 16}),
        # ONNX Runtime's default (0) is one thread per physical core: 16 here.
        make("onnxruntime", 1e-3, hardware=hardware, backend_info={"intra_op_num_threads": 0}),
        make(
            "onnxruntime",
            1e-3,
            batch=8,
            hardware=hardware,
            backend_info={"intra_op_num_threads": 8},
        ),
    ]
    insights = apple_silicon_insights(results)
    warnings = texts(insights, "threads", "warning")
    assert len(warnings) == 2
    torch_warning = next(w for w in warnings if w.startswith("torch intra-op threads 16"))
    assert "12 performance and 4 efficiency cores" in torch_warning
    assert "4 thread(s) run on efficiency cores" in torch_warning
    assert "--threads 12" in torch_warning
    assert any("default: one per physical core" in w for w in warnings)
    assert any(
        "threads 8: within the 12 performance cores" in t
        for t in texts(insights, "threads", "info")
    )


def test_within_the_performance_cores_no_thread_warning() -> None:
    hardware = mac(m4_max())
    insights = apple_silicon_insights(
        [make("torch", 1e-3, hardware=hardware, threads={"torch_intra_op": 12})]
    )
    assert texts(insights, "threads", "warning") == []
    assert texts(insights, "power and heat") == [
        "every result was taken with low-power mode off and a nominal thermal state"
    ]


def test_low_power_mode_and_thermal_pressure_warn() -> None:
    throttled = parse_pmset_therm(
        "2024-01-06 10:00:00 +0100 CPU Power notify\n"
        "\tCPU_Scheduler_Limit \t= 100\n\tCPU_Available_CPUs \t= 12\n\tCPU_Speed_Limit \t= 62\n"
    )
    results = [
        make("torch", 1e-3, hardware=mac(m4_max(low_power_mode=True))),
        make("onnxruntime", 1e-3, hardware=mac(m4_max(thermal=throttled))),
    ]
    warnings = texts(apple_silicon_insights(results), "power and heat", "warning")
    assert len(warnings) == 2
    assert "low-power mode" in warnings[0] and "mlp/torch/cpu/bs1" in warnings[0]
    assert "may be throttled" in warnings[0]
    assert "thermal pressure" in warnings[1] and "CPU speed limit 62%" in warnings[1]


def test_missing_facts_are_said_to_be_unavailable() -> None:
    # A virtual Mac: no P/E split; and no pmset answers (low power, thermal unknown).
    virtual = apple_silicon_from(
        sysctl=parse_sysctl(read("m1-virtual-sysctl.txt")),
        hardware=parse_system_profiler_hardware(
            read("m1-virtual-system_profiler-SPHardwareDataType.json")
        ),
    )
    assert virtual is not None and virtual.performance_cores is None
    mps_memory = MemoryReport(host_peak_rss_bytes=2**30, device_peak_allocated_bytes=2**28)
    results = [
        make("torch", 1e-3, hardware=mac(virtual), threads={"torch_intra_op": 3}),
        make("torch", 2e-3, device="mps", hardware=mac(virtual), memory=mps_memory),
        make("onnxruntime", 1e-3, hardware=mac(virtual)),  # no intra_op_num_threads recorded
    ]
    insights = apple_silicon_insights(results)
    unavailable = [i.text for i in insights if i.level == "unavailable"]
    missing = "not available on the machine that produced these results"
    assert any("performance-core count" in t and missing in t for t in unavailable)
    assert any(t.startswith("ONNX Runtime intra-op threads: " + missing) for t in unavailable)
    assert any("recommended_max_memory " + missing in t for t in unavailable)
    assert any(t.startswith("low-power mode: " + missing) for t in unavailable)
    assert any(t.startswith("thermal state: " + missing) for t in unavailable)
    # Nothing is guessed: no thread or power warning without the facts.
    assert texts(insights, "threads", "warning") == []
    assert texts(insights, "power and heat", "warning") == []


def test_cpu_against_mps_and_memory_against_the_budget() -> None:
    hardware = mac(m4_max())
    budget = 48 * GiB
    results = [
        make("onnxruntime", 1e-3, batch=8, hardware=hardware),
        make(
            "torch",
            4e-3,
            batch=8,
            device="mps",
            hardware=hardware,
            memory=MemoryReport(
                device_peak_allocated_bytes=int(0.8 * budget), device_budget_bytes=budget
            ),
        ),
        make(
            "torch",
            3e-3,
            batch=1,
            device="mps",
            hardware=hardware,
            memory=MemoryReport(device_peak_allocated_bytes=2 * GiB, device_budget_bytes=budget),
        ),
        make("coreml", 2e-3, batch=1, device="coreml-ane", hardware=hardware),
    ]
    insights = apple_silicon_insights(results)
    units = texts(insights, "compute units")
    assert any(
        t.startswith("mlp at batch 8: CPU with onnxruntime 1 ms vs GPU (MPS) with torch 4 ms")
        and "4.00x faster" in t
        for t in units
    )
    assert any(
        "Neural Engine (Core ML) with coreml 2 ms" in t
        and "GPU (MPS) with torch 3 ms" in t
        and "the Neural Engine (Core ML) is 1.50x faster" in t
        for t in units
    )
    [high] = texts(insights, "memory", "warning")
    assert "mlp/torch/mps/bs8" in high and "80.0% of the GPU's budget" in high
    assert any(
        "mlp/torch/mps/bs1: peak MPS memory 2.0 GiB is 4.2%" in t
        for t in texts(insights, "memory", "info")
    )


def test_other_machines_get_one_line() -> None:
    linux = {
        "cpu": {"model": "AMD EPYC 7R13 Processor"},
        "os": {"name": "Debian 12"},
        "apple_silicon": None,
    }
    insights = apple_silicon_insights([make("torch", 1e-3, hardware=linux)])
    assert insights == [
        Insight(
            "platform",
            "info",
            "the Apple Silicon insights apply to Apple Silicon Macs; these results come from "
            "AMD EPYC 7R13 Processor (Debian 12)",
        )
    ]
    # No hardware record at all: whether it was a Mac is not known, and not guessed.
    [unknown] = apple_silicon_insights([make("torch", 1e-3, hardware={})])
    assert unknown.level == "unavailable"
    assert unknown.text.startswith(
        "whether 1 result(s) ran on Apple Silicon is not available on the machine that "
        "produced these results"
    )


def test_results_from_two_machines_are_never_compared() -> None:
    m4 = mac(m4_max())
    linux = {"cpu": {"model": "AMD EPYC 7R13 Processor"}, "apple_silicon": None}
    results = [
        make("torch", 1e-3, hardware=m4),
        make("onnxruntime", 5e-3, hardware=m4),
        make("onnxruntime", 0.5e-3, hardware=linux, backend_info={"host": "linux"}),
    ]
    results[2] = results[2].model_copy(update={"benchmark": "mlp/onnxruntime/cpu/bs1 (linux)"})
    recs = recommend(results)
    assert [(r.machine, r.choice.backend if r.choice else None) for r in recs] == [
        ("AMD EPYC 7R13 Processor", "onnxruntime"),
        ("Apple M4 Max (MacBook Pro Mac16,5)", "torch"),
    ]
    insights = apple_silicon_insights(results)
    assert insights[0].text.endswith("1 result(s) come from AMD EPYC 7R13 Processor")


def test_importing_the_report_package_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, as_bench.report, as_bench.cli.report; "
        "print(sorted(m for m in ('matplotlib', 'polars', 'torch', 'playwright') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
