"""The report's memory columns: each benchmark's own memory, the device peak beside it."""

from __future__ import annotations

from as_bench.measurement import MemoryReport
from as_bench.report._data import build_data
from as_bench.results import BenchmarkResult
from as_bench.testing import make_measurement, make_result

MiB = 2**20
HEADING = "model+inference memory (RSS Δ)"


def _result(backend: str, memory: MemoryReport) -> BenchmarkResult:
    measurement = make_measurement([1e-3, 1.1e-3]).model_copy(update={"memory": memory})
    return make_result(
        f"mlp/{backend}/cpu/bs1", measurement=measurement, workload="mlp", backend=backend
    )


def _cells(results: list[BenchmarkResult]) -> dict[str, tuple[str, str]]:
    table = build_data(results).workloads["mlp"]
    memory, device = table.headers.index(HEADING), table.headers.index("device peak")
    return {row[0]: (row[memory], row[device]) for row in table.rows}


def test_each_benchmark_shows_its_own_memory_and_a_lower_bound_is_marked() -> None:
    first = MemoryReport(
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
        device_peak_allocated_bytes=64 * MiB,
    )
    data = build_data([_result("tflite", first), _result("torch", later)])
    cells = _cells([_result("tflite", first), _result("torch", later)])
    assert cells["tflite"] == ("450.0 MiB", "-")
    assert cells["torch"] == ("≥40.0 MiB", "64.0 MiB")
    assert any("lower bound" in note and "--isolate" in note for note in data.notes)
    assert "peak memory" not in build_data([_result("tflite", first)]).workloads["mlp"].headers


def test_an_old_result_shows_the_process_peak_labelled_as_such() -> None:
    old = _result("torch", MemoryReport(host_peak_rss_bytes=1200 * MiB))
    assert _cells([old])["torch"] == ("process peak RSS 1.2 GiB", "-")
    assert any("process's peak RSS" in note for note in build_data([old]).notes)
    assert _cells([_result("torch", MemoryReport())])["torch"] == ("-", "-")
