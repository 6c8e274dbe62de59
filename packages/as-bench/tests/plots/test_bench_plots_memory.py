"""The memory figure: each benchmark's model+inference memory, not the process's peak."""

from __future__ import annotations

from typing import Any

import pytest

from as_bench.measurement import MemoryReport
from as_bench.results import BenchmarkResult
from as_bench.testing import make_measurement, make_result

pytest.importorskip("matplotlib")

from matplotlib.patches import Rectangle

from as_bench.plots._memory import build_memory

MiB = 2**20


def _result(backend: str, memory: MemoryReport) -> BenchmarkResult:
    measurement = make_measurement([1e-3, 1.1e-3]).model_copy(update={"memory": memory})
    return make_result(
        f"mlp/{backend}/cpu/bs1", measurement=measurement, workload="mlp", backend=backend
    )


def _texts(fig: Any) -> str:
    found: list[Any] = fig.findobj(lambda a: hasattr(a, "get_text"))
    return "\n".join(str(t.get_text()) for t in found)


def test_bars_are_each_benchmarks_own_memory_and_say_so() -> None:
    clean = MemoryReport(
        host_peak_rss_bytes=1100 * MiB,
        host_before_load_rss_bytes=640 * MiB,
        host_load_peak_rss_bytes=1090 * MiB,
        host_memory_polluted=False,
    )
    later = MemoryReport(
        host_peak_rss_bytes=1150 * MiB,
        host_before_load_rss_bytes=1100 * MiB,
        host_load_peak_rss_bytes=1140 * MiB,
        host_memory_polluted=True,
    )
    old = MemoryReport(host_peak_rss_bytes=1200 * MiB)
    fig = build_memory(
        [_result("tflite", clean), _result("torch", later), _result("onnxruntime", old)]
    )
    ax = fig.axes[0]
    backends = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    heights = dict(zip(backends, (p.get_height() * 1024 for p in bars), strict=True))
    assert "GiB" in ax.get_ylabel()
    # MiB: each benchmark's own increase; the old result as recorded (the process's peak).
    assert heights == pytest.approx({"tflite": 450.0, "torch": 40.0, "onnxruntime": 1200.0})
    text = _texts(fig)
    assert "RSS increase from before loading" in text  # the title says what it is
    assert "450.0 MiB" in text and "≥40.0 MiB" in text and "process 1.2 GiB" in text
    assert "process peak RSS" in text  # the legend labels the old result's bar
    assert "Peak memory by backend" not in text
