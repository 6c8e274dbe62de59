"""``as-bench run``'s memory columns: what was measured, said in the heading and the JSON."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from rich.console import Console

from as_bench.cli.run import outcome_row, summary_table
from as_bench.measurement import MemoryReport
from as_bench.results import ResultStore
from as_bench.suite import Combination, Outcome, RunReport, load_suite
from as_bench.testing import make_measurement, make_result

MiB = 2**20


def _outcome(backend: str, memory: MemoryReport) -> Outcome:
    measurement = make_measurement([1e-3, 1.1e-3]).model_copy(update={"memory": memory})
    combo = Combination("mlp", backend, "cpu", 1)
    return Outcome(combo, "ok", make_result(combo.name, measurement=measurement, backend=backend))


def _table(tmp_path: Path, *outcomes: Outcome) -> str:
    report = RunReport(load_suite(overrides={"results_dir": str(tmp_path)}), ResultStore(tmp_path))
    report.outcomes.extend(outcomes)
    buffer = StringIO()
    Console(file=buffer, width=300, color_system=None).print(summary_table(report))
    return buffer.getvalue()


FIRST = MemoryReport(
    host_peak_rss_bytes=1100 * MiB,
    host_before_load_rss_bytes=640 * MiB,
    host_load_peak_rss_bytes=1090 * MiB,
    host_memory_polluted=False,
)
LATER = MemoryReport(
    host_peak_rss_bytes=1150 * MiB,
    host_before_load_rss_bytes=1100 * MiB,
    host_load_peak_rss_bytes=1140 * MiB,
    host_memory_polluted=True,
    device_peak_allocated_bytes=64 * MiB,
    device_budget_bytes=1024 * MiB,
)


def test_the_table_shows_each_benchmarks_own_memory_and_the_device_peak(tmp_path: Path) -> None:
    text = _table(tmp_path, _outcome("tflite", FIRST), _outcome("torch", LATER))
    assert "model+inference memory (RSS Δ)" in text and "device peak" in text
    assert "peak RSS" not in text
    tflite, torch = (
        next(line for line in text.splitlines() if f"│ {name} " in line)
        for name in ("tflite", "torch")
    )
    assert "450.0 MiB" in tflite and "1.1 GiB" not in tflite  # not the process's high-water mark
    assert "≥40.0 MiB" in torch  # after another benchmark in the process: a lower bound
    assert "64.0 MiB (6.2% of budget)" in torch
    assert "--isolate" in text  # the caption says what ≥ means and how to avoid it


def test_the_caption_appears_only_when_a_figure_is_a_lower_bound(tmp_path: Path) -> None:
    assert "--isolate" not in _table(tmp_path, _outcome("tflite", FIRST))


def test_json_rows_name_what_was_measured() -> None:
    row = outcome_row(_outcome("torch", LATER))
    assert row["model_memory_bytes"] == 40 * MiB
    assert row["model_memory_polluted"] is True
    assert row["host_before_load_rss_bytes"] == 1100 * MiB
    assert row["host_peak_rss_bytes"] == 1150 * MiB  # the process's, kept for old readers
    assert row["device_peak_allocated_bytes"] == 64 * MiB
    old = outcome_row(_outcome("torch", MemoryReport(host_peak_rss_bytes=MiB)))
    assert old["model_memory_bytes"] is None and old["model_memory_polluted"] is None
