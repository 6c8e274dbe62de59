"""What a report says, as plain data: :class:`ReportData`, built from results.

Every figure is formatted here once, so that the Markdown and the HTML say the same
thing; the renderers only lay the text out and escape it (it comes from result files,
which may be hostile).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from as_bench._memory_text import (
    DEVICE_PEAK_HEADING,
    MODEL_MEMORY_HEADING,
    POLLUTED_NOTE,
    device_peak_cell,
    model_memory_cell,
)
from as_bench.measurement import device_time_cell_suffix, device_time_heading
from as_bench.probe import summary_rows
from as_bench.report._functions import function_insights
from as_bench.report._hardware import hardware_of, machine_label
from as_bench.report._insights import Insight, apple_silicon_insights
from as_bench.report._recommend import (
    Recommendation,
    accuracy_metric,
    check_text,
    latest_per_benchmark,
    recommend,
)
from as_bench.results import BenchmarkResult
from as_bench.results._measured import is_function_result
from as_core.fmt import format_bytes, format_rate, format_seconds

if TYPE_CHECKING:
    from as_bench.compare import Comparison

__all__ = [
    "ComparisonSection",
    "Figure",
    "ReportData",
    "Table",
    "WarningGroup",
    "build_data",
    "figure_title",
    "results_heading",
]

log = logging.getLogger(__name__)

_FIGURE_TITLES = {
    "distributions": "Latency distributions",
    "throughput": "Throughput",
    "memory": "Model and inference memory (RSS increase) and device peak",
    "pareto": "Accuracy, latency and model size (Pareto front)",
    "comparison": "Comparison with the baseline",
}
_MAX_RAW_ROWS = 60  # an unrecognised hardware record is shown as stored, up to this
_MAX_TITLE_NAMES = 6  # a default title names this many workloads, then counts the rest

Subject = Literal["models", "functions", "models and functions"]


@dataclass(frozen=True)
class Table:
    """A table of text cells.

    Attributes:
        headers: Column titles.
        rows: The cells, row by row.
        numeric: Indices of the columns to right-align.
    """

    headers: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class WarningGroup:
    """Noise warnings that say the same thing (numbers aside) about several benchmarks.

    Attributes:
        text: One of the messages, as recorded.
        benchmarks: The benchmarks it was recorded for.
    """

    text: str
    benchmarks: list[str]


@dataclass(frozen=True)
class Figure:
    """A figure of the report.

    Attributes:
        name: The figure's name (``"distributions"``).
        title: Its caption.
        path: Where the PNG is, relative to the report's folder (``images/x.png``).
    """

    name: str
    title: str
    path: PurePosixPath


@dataclass(frozen=True)
class ComparisonSection:
    """The comparison with a baseline.

    Attributes:
        table: One row per benchmark found on both sides.
        summary: Lines above the table (geometric mean, counts).
        environment_warnings: Differences between the two sides' environments.
    """

    table: Table
    summary: list[str]
    environment_warnings: list[str]


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, formatted, in reading order.

    Attributes:
        title: The report's title.
        generated_at: When the report was built (UTC).
        overview: Lines under the title: how many results, when, where.
        environment: ``(label, value)`` rows of the first result's machine.
        notes: Remarks on the data (several machines, repeated runs left out).
        warnings: Noise warnings, grouped.
        workloads: A results table per workload.
        comparison: The comparison with a baseline, if one was given.
        recommendations: The recommendation per workload and batch size, of model
            results (none for functions: there is no backend to choose).
        insights: Apple Silicon insights, of model results.
        figures: The figures, in order.
        function_insights: What function results say (comparisons, noise,
            convergence); empty without function results.
        subject: What was measured: models on backends, functions of one's own
            (:func:`~as_bench.results._measured.is_function_result`), or both.
    """

    title: str
    generated_at: datetime
    overview: list[str]
    environment: list[tuple[str, str]]
    notes: list[str]
    warnings: list[WarningGroup]
    workloads: dict[str, Table]
    comparison: ComparisonSection | None
    recommendations: list[Recommendation]
    insights: list[Insight]
    figures: list[Figure] = field(default_factory=list)
    function_insights: list[Insight] = field(default_factory=list)
    subject: Subject = "models"


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, "not recorded" if value is None else str(value))]


def _environment(result: BenchmarkResult) -> tuple[list[tuple[str, str]], list[str]]:
    info = hardware_of(result)
    if info is not None:
        return summary_rows(info), []
    rows = _flatten(result.hardware)
    note = (
        "the hardware record does not match this as-bench's schema (an older or newer "
        "probe, or a partial record); it is shown as stored"
    )
    if not rows:
        return [], ["the results carry no hardware record: the machine is not known"]
    return rows[:_MAX_RAW_ROWS], [note]


def _warning_groups(results: Sequence[BenchmarkResult]) -> list[WarningGroup]:
    groups: dict[str, WarningGroup] = {}
    for result in results:
        for text in result.measurement.warnings:
            # Same message with other numbers (0.9 vs 1.1 CPUs busy) is the same warning.
            key = re.sub(r"\d+(?:\.\d+)?", "#", text)
            group = groups.setdefault(key, WarningGroup(text=text, benchmarks=[]))
            if result.benchmark not in group.benchmarks:
                group.benchmarks.append(result.benchmark)
    return sorted(groups.values(), key=lambda g: (-len(g.benchmarks), g.text))


def _memory_cell(result: BenchmarkResult) -> str:
    memory = result.measurement.memory
    parts = []
    if memory.host_peak_rss_bytes is not None:
        parts.append(f"RSS {format_bytes(memory.host_peak_rss_bytes)}")
    device = memory.device_peak_allocated_bytes
    if device is not None:
        budget = memory.device_budget_bytes
        share = f" ({device / budget * 100:.1f}% of budget)" if budget else ""
        parts.append(f"{result.device} {format_bytes(device)}{share}")
    return ", ".join(parts) or "-"


def _model_memory_cell(result: BenchmarkResult) -> str:
    return model_memory_cell(result.measurement.memory)


def _device_peak_cell(result: BenchmarkResult) -> str:
    return device_peak_cell(result.measurement.memory)


def _memory_notes(results: Sequence[BenchmarkResult]) -> list[str]:
    """What the memory column's marks mean, for the marks that appear."""
    memories = [r.measurement.memory for r in results]
    notes = []
    if any(m.model_memory_bytes is not None and m.host_memory_polluted for m in memories):
        notes.append(f"{MODEL_MEMORY_HEADING}: {POLLUTED_NOTE}")
    if any(m.model_memory_bytes is None and m.host_peak_rss_bytes is not None for m in memories):
        notes.append(
            f"{MODEL_MEMORY_HEADING}: results without an RSS reading from before their model "
            "loaded (recorded by an older as-bench, or outside as-bench run) show the "
            "measuring process's peak RSS instead, which counts whatever ran before in "
            "that process"
        )
    return notes


def _notes_cell(result: BenchmarkResult, chosen: set[str]) -> str:
    notes = []
    if result.benchmark in chosen:
        notes.append("recommended")
    if not result.measurement.converged:
        notes.append("not converged")
    if result.measurement.warnings:
        notes.append(f"{len(result.measurement.warnings)} warning(s)")
    return ", ".join(notes)


def _workload_tables(
    results: Sequence[BenchmarkResult],
    recommendations: Sequence[Recommendation],
    *,
    several_machines: bool,
) -> dict[str, Table]:
    chosen = {r.choice.benchmark for r in recommendations if r.choice is not None}
    device_heading = device_time_heading(r.measurement.device_time for r in results)
    headers = [
        "backend",
        "device",
        "batch",
        "median latency (95% CI)",
        device_heading,
        "throughput",
        MODEL_MEMORY_HEADING,
        DEVICE_PEAK_HEADING,
        "accuracy",
        "output check",
        "notes",
    ]
    if several_machines:
        headers.append("machine")
    tables: dict[str, Table] = {}
    for result in results:
        stats = result.measurement.latency.stats
        metric = accuracy_metric(result)
        accuracy = "not evaluated" if metric is None else f"{metric[1]:.4g}"
        if metric is not None and metric[0] != "accuracy":
            accuracy = f"{metric[0]} {accuracy}"
        row = [
            result.backend,
            result.device,
            str(result.batch_size),
            f"{format_seconds(stats.median)} ({format_seconds(stats.ci_low)} to "
            f"{format_seconds(stats.ci_high)})",
            format_seconds(result.device_median_s)
            + device_time_cell_suffix(result.measurement.device_time, device_heading),
            format_rate(result.throughput_items_per_s),
            _model_memory_cell(result),
            _device_peak_cell(result),
            accuracy,
            check_text(result),
            _notes_cell(result, chosen),
        ]
        if several_machines:
            row.append(machine_label(result))
        table = tables.setdefault(
            result.workload, Table(headers=headers, rows=[], numeric=frozenset({2, 3, 4, 5}))
        )
        table.rows.append(row)
    return tables


def _function_tables(
    results: Sequence[BenchmarkResult], *, several_machines: bool
) -> dict[str, Table]:
    # A function has no backend, accuracy or output check: its columns are its timing.
    device_heading = device_time_heading(r.measurement.device_time for r in results)
    headers = [
        "function",
        "device",
        "batch",
        "median latency (95% CI)",
        "IQR / median",
        "samples x calls",
        device_heading,
        "throughput",
        # A function's result has no before-load reading: the process's peak it is.
        "process peak RSS, device peak",
        "notes",
    ]
    if several_machines:
        headers.append("machine")
    tables: dict[str, Table] = {}
    for result in results:
        stats = result.measurement.latency.stats
        row = [
            result.benchmark,
            result.device,
            str(result.batch_size),
            f"{format_seconds(stats.median)} ({format_seconds(stats.ci_low)} to "
            f"{format_seconds(stats.ci_high)})",
            f"{stats.relative_iqr * 100:.1f}%",
            f"{stats.n} x {result.measurement.inner_loops}",
            format_seconds(result.device_median_s)
            + device_time_cell_suffix(result.measurement.device_time, device_heading),
            format_rate(result.throughput_items_per_s),
            _memory_cell(result),
            _notes_cell(result, set()),
        ]
        if several_machines:
            row.append(machine_label(result))
        table = tables.setdefault(
            result.workload,
            Table(headers=headers, rows=[], numeric=frozenset({2, 3, 4, 5, 6, 7})),
        )
        table.rows.append(row)
    return tables


def _comparison_section(comparison: Comparison) -> ComparisonSection:
    rows = []
    for item in comparison.items:
        ratio = f"{item.ratio:.3f} ({item.ratio_ci_low:.3f} to {item.ratio_ci_high:.3f})"
        if item.failed:
            verdict = "FAILED: " + "; ".join(item.reasons)
        else:
            verdict = "passed" if item.thresholds else "-"  # "-": no threshold applied
        rows.append(
            [
                item.benchmark,
                item.timer,
                format_seconds(item.base_median_s),
                format_seconds(item.new_median_s),
                ratio,
                f"{item.p_value:.3g}",
                item.change + ("" if item.significant else " (not significant)"),
                verdict,
            ]
        )
    headers = ["benchmark", "timer", "baseline median", "new median", "ratio new/base (95% CI)"]
    headers += ["p-value", "change", "gate"]
    summary = [f"{len(rows)} benchmark(s) found in both the baseline and these results"]
    if comparison.only_in_base:
        summary.append("only in the baseline: " + ", ".join(comparison.only_in_base))
    if comparison.only_in_new:
        summary.append("only in these results: " + ", ".join(comparison.only_in_new))
    if comparison.geomean_ratio is not None:
        summary.append(
            f"geometric mean of the median ratios (new / baseline): {comparison.geomean_ratio:.3f}"
        )
    return ComparisonSection(
        table=Table(headers=headers, rows=rows, numeric=frozenset({2, 3, 4, 5})),
        summary=summary,
        environment_warnings=list(comparison.environment_warnings),
    )


def _overview(results: Sequence[BenchmarkResult], machines: list[str]) -> list[str]:
    start = min(r.started_at for r in results)
    end = max(r.finished_at for r in results)
    workloads = sorted({r.workload for r in results})
    functions = sum(1 for r in results if is_function_result(r))
    if functions == len(results):
        what = f"{len(results)} function measurement(s) in {len(workloads)} group(s)"
    else:
        what = f"{len(results)} result(s) of {len(workloads)} workload(s)"
        what += f" ({functions} of them functions)" if functions else ""
    lines = [
        f"{what} ({', '.join(workloads)}), "
        f"measured {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        f"machine: {'; '.join(machines)}",
    ]
    versions = sorted({r.as_bench_version for r in results})
    commits = sorted({(r.git.commit[:12], r.git.dirty) for r in results if r.git is not None})
    source = ", ".join(f"{c}{' (dirty)' if dirty else ''}" for c, dirty in commits)
    lines.append(f"as-bench {', '.join(versions)}" + (f", git commit {source}" if source else ""))
    return lines


def build_data(
    results: Sequence[BenchmarkResult],
    *,
    comparison: Comparison | None = None,
    figures: Sequence[Figure] = (),
    title: str | None = None,
) -> ReportData:
    """Gather what the report shows.

    Args:
        results: The results (at least one). Repeated runs of a benchmark count once:
            the latest.
        comparison: The comparison with a baseline, if any.
        figures: The figures drawn for the report.
        title: The title; a default names the workloads.

    Raises:
        ValueError: ``results`` is empty.
    """
    if not results:
        raise ValueError("a report needs at least one result")
    latest = latest_per_benchmark(results)
    machines = sorted({machine_label(r) for r in latest})
    environment, notes = _environment(latest[0])
    if len(machines) > 1:
        notes.insert(
            0,
            f"these results come from {len(machines)} different machines; the environment "
            f"below is that of {machine_label(latest[0])}, and recommendations are made "
            "per machine",
        )
    dropped = len(results) - len(latest)
    if dropped:
        notes.append(
            f"{dropped} older result(s) of benchmarks measured more than once are left out: "
            "the report shows the latest run of each"
        )
    # Functions of one's own have no backend to recommend and no compute unit to choose:
    # the model sections describe model results only, the function findings the rest.
    models = [r for r in latest if not is_function_result(r)]
    functions = [r for r in latest if is_function_result(r)]
    subject: Subject = (
        "functions" if not models else "models and functions" if functions else "models"
    )
    notes.extend(_memory_notes(models))
    recommendations = recommend(models)
    several = len(machines) > 1
    tables = _workload_tables(models, recommendations, several_machines=several)
    tables.update(_function_tables(functions, several_machines=several))
    return ReportData(
        title=title or _default_title(latest, subject),
        generated_at=datetime.now(UTC),
        overview=_overview(latest, machines),
        environment=environment,
        notes=notes,
        warnings=_warning_groups(latest),
        workloads=tables,
        comparison=None if comparison is None else _comparison_section(comparison),
        recommendations=recommendations,
        insights=apple_silicon_insights(models) if models else [],
        figures=list(figures),
        function_insights=function_insights(functions),
        subject=subject,
    )


def _default_title(results: Sequence[BenchmarkResult], subject: Subject) -> str:
    workloads = sorted({r.workload for r in results})
    names = ", ".join(workloads[:_MAX_TITLE_NAMES])
    if len(workloads) > _MAX_TITLE_NAMES:
        names += f" and {len(workloads) - _MAX_TITLE_NAMES} more"
    if subject == "functions":
        return f"as-bench report of functions: {names}"
    return f"as-bench report: {names}"


FUNCTION_FINDINGS = "Functions: comparisons, noise and convergence"
"""The heading of what a report says about function results."""


def results_heading(data: ReportData) -> str:
    """The heading of the results tables: by function when only functions were measured."""
    return "Results by function" if data.subject == "functions" else "Results by workload"


def figure_title(name: str) -> str:
    """The caption of a figure ``render_all`` names ``name``."""
    return _FIGURE_TITLES.get(name, name.replace("_", " ").capitalize())
