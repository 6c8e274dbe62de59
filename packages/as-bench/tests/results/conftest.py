"""Builders of real-looking results for the results tests (statistics computed with NumPy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from as_bench.measurement import Measurement, MemoryReport, TimingSeries, WarmupReport
from as_bench.results import BenchmarkResult, GitInfo, OutputCheck
from as_bench.stats import Stats

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_stats(samples: Sequence[float]) -> Stats:
    # Computed here rather than with summarize() so these tests don't depend on its details.
    a = np.asarray(samples, dtype=np.float64)
    q1, median, q3, p90, p95, p99 = np.percentile(a, [25, 50, 75, 90, 95, 99])
    iqr = float(q3 - q1)
    return Stats(
        n=len(a),
        median=float(median),
        mean=float(a.mean()),
        stdev=float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        min=float(a.min()),
        max=float(a.max()),
        q1=float(q1),
        q3=float(q3),
        iqr=max(iqr, 0.0),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
        ci_level=0.95,
        ci_low=float(a.min()),
        ci_high=float(a.max()),
        outliers=int(np.sum((a < q1 - 1.5 * iqr) | (a > q3 + 1.5 * iqr))),
    )


def make_measurement(
    samples: Sequence[float], device_samples: Sequence[float] | None = None, device: str = "cpu"
) -> Measurement:
    device_time = None
    if device_samples is not None:
        device_time = TimingSeries(
            label="device time (CUDA events)",
            timer="cuda_events",
            samples_s=list(device_samples),
            stats=make_stats(device_samples),
        )
    return Measurement(
        device=device,
        latency=TimingSeries(
            label="latency (synchronised wall clock)",
            timer="perf_counter",
            samples_s=list(samples),
            stats=make_stats(samples),
        ),
        device_time=device_time,
        cold_start_s=max(samples) * 3,
        warmup=WarmupReport(iterations=10, seconds=0.05, stable=True),
        inner_loops=4,
        converged=True,
        stop_reason="CI of the median within 1%",
        total_seconds=1.5,
        memory=MemoryReport(host_peak_rss_bytes=200_000_000, host_baseline_rss_bytes=190_000_000),
        threads={"torch_intra_op": 8, "OMP_NUM_THREADS": None},
    )


def build_result(index: int = 0, **overrides: Any) -> BenchmarkResult:
    """A complete result; ``index`` varies its samples and times so results differ."""
    rng = np.random.default_rng(index)
    samples = (0.002 + rng.gamma(2.0, 0.0001, size=30)).tolist()
    started = T0 + timedelta(seconds=index)
    fields: dict[str, Any] = {
        "id": f"{index:032x}",  # deterministic, so a test can rebuild the same result
        "benchmark": f"digits-cnn/onnxruntime/cpu/bs{2 ** (index % 6)}",
        "workload": "digits-cnn",
        "backend": "onnxruntime",
        "device": "cpu",
        "batch_size": 2 ** (index % 6),
        "measurement": make_measurement(samples),
        "throughput_items_per_s": 2 ** (index % 6) / float(np.median(samples)),
        "accuracy": {"accuracy": 0.97 - index / 1000},
        "output_check": OutputCheck(
            reference_backend="torch",
            max_abs_error=1.2e-6,
            max_rel_error=3.4e-5,
            top1_agreement=1.0,
            passed=True,
            tolerance=1e-4,
        ),
        "model_size_bytes": 431_337,
        "backend_info": {"providers": ["CPUExecutionProvider"], "onnxruntime": "1.20.1"},
        "hardware": {"cpu": {"model": "Apple M3 Pro", "performance_cores": 6}, "os": "macOS"},
        "git": GitInfo(commit="a" * 40, dirty=False, branch="main"),
        "started_at": started,
        "finished_at": started + timedelta(seconds=2),
        "tags": {"suite": "default"},
        "params": {"min_time_s": 1.0, "threads": [1, 2]},
    }
    fields.update(overrides)
    return BenchmarkResult(**fields)


@pytest.fixture(scope="session")  # pure builders: nothing to reset between tests
def make_result() -> Callable[..., BenchmarkResult]:
    return build_result


@pytest.fixture(scope="session")  # pure builders: nothing to reset between tests
def measurement_of() -> Callable[..., Measurement]:
    return make_measurement
