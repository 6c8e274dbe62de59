"""``as-bench run``: the suite runner's face — progress while it runs, a table after."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from as_bench._memory_text import (
    DEVICE_PEAK_HEADING,
    MODEL_MEMORY_HEADING,
    POLLUTED_NOTE,
    device_peak_cell,
    model_memory_cell,
)
from as_bench.cli._app import app, command_line
from as_bench.cli._quiet import library_output
from as_bench.measurement import device_time_cell_suffix, device_time_heading, device_timing_of
from as_core.fmt import format_rate, format_seconds

if TYPE_CHECKING:  # the runner imports the engine and the backends: only when running
    from as_bench.measurement import TimingSeries
    from as_bench.suite import Combination, Outcome, RunReport, Suite

__all__ = [
    "outcome_row",
    "print_report",
    "run",
    "run_with_progress",
    "summary_table",
    "warning_lines",
]


def _ci(outcome: Outcome) -> str:
    assert outcome.result is not None
    stats = outcome.result.measurement.primary.stats
    return f"±{stats.ci_halfwidth_relative * 100:.1f}%"


def _check(outcome: Outcome) -> str:
    result = outcome.result
    if result is None or result.output_check is None:
        return "-"
    check = result.output_check
    error = "nan/inf" if check.max_abs_error is None else f"{check.max_abs_error:.1e}"
    return f"[green]ok[/] {error}" if check.passed else f"[red]MISMATCH[/] {error}"


def _notes(outcome: Outcome) -> str:
    assert outcome.result is not None
    measurement = outcome.result.measurement
    notes = [] if measurement.converged else ["not converged"]
    if measurement.warnings:
        notes.append(f"{len(measurement.warnings)} warning(s)")
    return ", ".join(notes)


def outcome_row(outcome: Outcome) -> dict[str, Any]:
    """The summary of one outcome as plain data (for ``--json``)."""
    combo = outcome.combination
    row: dict[str, Any] = {
        "benchmark": combo.name,
        "status": outcome.status,
        "message": outcome.message,
    }
    result = outcome.result
    if result is not None:
        measurement = result.measurement
        row.update(
            id=result.id,
            latency_median_s=measurement.latency.stats.median,
            latency_ci_s=[measurement.latency.stats.ci_low, measurement.latency.stats.ci_high],
            device_time_median_s=(
                measurement.device_time.stats.median if measurement.device_time else None
            ),
            device_timing=device_timing_of(measurement.device_time),
            throughput_items_per_s=result.throughput_items_per_s,
            model_memory_bytes=measurement.memory.model_memory_bytes,
            model_memory_polluted=measurement.memory.host_memory_polluted,
            host_before_load_rss_bytes=measurement.memory.host_before_load_rss_bytes,
            host_peak_rss_bytes=measurement.memory.host_peak_rss_bytes,
            device_peak_allocated_bytes=measurement.memory.device_peak_allocated_bytes,
            accuracy=result.accuracy,
            output_check_passed=result.output_check.passed if result.output_check else None,
            converged=measurement.converged,
            warnings=measurement.warnings,
        )
    return row


def _device_cell(series: TimingSeries | None, heading: str) -> str:
    if series is None:
        return "-"
    return format_seconds(series.stats.median) + device_time_cell_suffix(series, heading)


def summary_table(report: RunReport) -> Table:
    """The results of a run, one row per measured combination."""
    table = Table(title=f"as-bench run: {report.suite.name}", title_justify="left")
    device_heading = device_time_heading(
        o.result.measurement.device_time for o in report.outcomes if o.result is not None
    )
    for column, justify in (
        ("workload", "left"),
        ("backend", "left"),
        ("device", "left"),
        ("batch", "right"),
        ("latency (median)", "right"),
        ("CI 95%", "right"),
        (device_heading, "right"),
        ("throughput", "right"),
        (MODEL_MEMORY_HEADING, "right"),
        (DEVICE_PEAK_HEADING, "right"),
        ("accuracy", "right"),
        ("vs torch", "left"),
        ("notes", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for outcome in report.outcomes:
        combo = outcome.combination
        if outcome.result is None:
            continue
        result = outcome.result
        measurement = result.measurement
        accuracy = ", ".join(f"{v:.4g}" for v in (result.accuracy or {}).values()) or "-"
        table.add_row(
            escape(combo.workload),
            escape(combo.backend),
            escape(combo.device),
            str(combo.batch_size),
            format_seconds(measurement.latency.stats.median),
            _ci(outcome),
            _device_cell(measurement.device_time, device_heading),
            format_rate(result.throughput_items_per_s),
            model_memory_cell(measurement.memory),
            device_peak_cell(measurement.memory),
            accuracy,
            _check(outcome),
            escape(_notes(outcome)),
        )
    if any(o.result and o.result.measurement.memory.host_memory_polluted for o in report.outcomes):
        table.caption = POLLUTED_NOTE
        table.caption_justify = "left"
    return table


def warning_lines(report: RunReport) -> list[str]:
    """The measurements' warnings, each text once with the benchmarks it applies to."""
    grouped: dict[str, list[str]] = {}
    for outcome in report.outcomes:
        if outcome.result is None:
            continue
        for text in outcome.result.measurement.warnings:
            names = grouped.setdefault(text, [])
            if outcome.combination.name not in names:
                names.append(outcome.combination.name)
    return [f"{text} ({', '.join(names)})" for text, names in grouped.items()]


def _status_line(outcome: Outcome) -> str:
    combo = outcome.combination
    if outcome.status == "skipped":
        reason = outcome.message or "no reason given (run again with --debug)"
        where = f"{escape(combo.backend)} {escape(combo.device)}"
        return f"[yellow]skipped[/] {where}: {escape(reason)}"
    if outcome.status == "failed":
        return f"[red]failed[/] {escape(combo.name)}: {escape(outcome.message)}"
    assert outcome.result is not None
    median = format_seconds(outcome.result.measurement.latency.stats.median)
    colour = "green" if outcome.status == "ok" else "red"
    extra = f" ({escape(outcome.message)})" if outcome.message else ""
    return f"[{colour}]{outcome.status}[/] {escape(combo.name)}: {median}{extra}"


def run_with_progress(suite: Suite, console: Console) -> RunReport:
    """Run ``suite`` showing a progress bar on a terminal and one line per result otherwise."""
    from as_bench.suite import run_suite

    interactive = console.is_terminal
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not interactive,
        transient=True,
        # Not through the bar: what libraries write to sys.stderr must reach descriptor 2,
        # where `library_output` captures it for the log.
        redirect_stderr=False,
    )
    task_id = progress.add_task("measuring", total=None)

    def on_plan(todo: list[Combination], skipped: list[Outcome]) -> None:
        progress.update(task_id, total=len(todo))
        for outcome in skipped:
            # soft_wrap: a long reason stays on its line, not split from its backend
            console.print(_status_line(outcome), soft_wrap=True)
        console.print(f"measuring {len(todo)} combination(s) into {escape(str(suite.results_dir))}")
        if todo:
            progress.update(task_id, description=escape(todo[0].name))

    def on_outcome(outcome: Outcome) -> None:
        progress.advance(task_id)
        progress.update(task_id, description=escape(outcome.combination.name))
        console.print(_status_line(outcome), soft_wrap=True)

    with progress:
        return run_suite(suite, on_plan=on_plan, on_outcome=on_outcome)


def print_report(report: RunReport, console: Console, *, as_json: bool) -> int:
    """Print the summary (table or JSON) and return the exit code: 1 on any problem."""
    if as_json:
        payload = {
            "suite": report.suite.name,
            "results_dir": str(Path(report.store.root)),
            "outcomes": [outcome_row(o) for o in report.outcomes],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        if not console.is_terminal:
            # Piped or logged: rich would squeeze the table into 80 columns.
            console.width = max(console.width, 180)
        console.print(summary_table(report))
        warnings = warning_lines(report)
        if warnings:
            console.print("[yellow]warnings:[/]")
            for line in warnings:
                console.print(f"  {escape(line)}", soft_wrap=True)
        console.print(
            f"{len(report.results)} result(s) stored in {escape(str(report.store.root))}; "
            "latency is a synchronised call; device time is from device events, back-to-back "
            "(GPU time per call of calls queued back to back) unless --device-timing per-call "
            "(an event pair around each synchronised call)"
        )
    for outcome in report.problems:
        console.print(
            f"[red]problem:[/] {escape(outcome.combination.name)}: " + escape(outcome.message)
        )
    return 1 if report.problems else 0


def _device_timing(value: str | None) -> str | None:
    """``--device-timing`` as a ``MeasureOptions.device_timing`` value (the suite checks it)."""
    return None if value is None else value.strip().lower().replace("-", "_")


@app.command("run")
def run(
    suite_file: Annotated[
        Path | None,
        typer.Argument(help="Suite file (YAML, JSON or TOML); without one, the default suite."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Profile of the suite file.")
    ] = None,
    workload: Annotated[
        list[str] | None,
        typer.Option(
            "--workload",
            "-w",
            help="Workload name or pkg.module:factory (repeat).",
            show_default="mlp, digits-cnn",
        ),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="Backend name (repeat).",
            show_default="every backend installed here",
        ),
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            "--device",
            "-d",
            help="Device: cpu, cuda:N, mps, mlx (repeat).",
            show_default="every device each backend can use",
        ),
    ] = None,
    batch_size: Annotated[
        list[int] | None,
        typer.Option("--batch-size", "-B", help="Batch size (repeat).", show_default="1, 32"),
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results-dir", "-o", help="Result store folder.", show_default="as-bench-results"
        ),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time", help="Most seconds of sampling per benchmark.", show_default="2.0"
        ),
    ] = None,
    target_ci: Annotated[
        float | None,
        typer.Option(
            "--target-ci",
            help="Stop at this relative CI half-width (0.01 = ±1%).",
            show_default="0.02",
        ),
    ] = None,
    isolate: Annotated[
        bool | None,
        typer.Option(
            "--isolate/--no-isolate",
            help="Each benchmark in a fresh process.",
            show_default="no-isolate",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="Fix the number of compute threads.",
            show_default="the libraries' own",
        ),
    ] = None,
    device_timing: Annotated[
        str | None,
        typer.Option(
            "--device-timing",
            help=(
                "Device time on CUDA/MPS: batched (one event pair around calls queued back "
                "to back: GPU time per call of a stream) or per-call (an event pair around "
                "each synchronised call; reads higher on launch-bound calls)."
            ),
            show_default="batched",
        ),
    ] = None,
    remeasure_noisy: Annotated[
        int | None,
        typer.Option(
            "--remeasure-noisy",
            min=0,
            max=20,
            help=(
                "Measure a noisy benchmark (IQR at least 10% of the median: a busy machine) "
                "again up to N times, in fresh processes, before storing it; 0: never."
            ),
            show_default="2",
        ),
    ] = None,
    no_check: Annotated[
        bool,
        typer.Option("--no-check", help="Skip checking outputs against eager PyTorch."),
    ] = False,
    no_accuracy: Annotated[
        bool,
        typer.Option("--no-accuracy", help="Skip scoring on held-out data."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> int:
    """Measure workloads on every backend and device available (or those of a suite file)."""
    from as_bench.suite import load_suite

    overrides: dict[str, Any] = {}
    measure: dict[str, Any] = {}
    given: tuple[tuple[str, Any], ...] = (
        ("workloads", workload),
        ("backends", backend),
        ("devices", device),
        ("batch_sizes", batch_size),
        ("results_dir", results_dir),
    )
    for key, value in given:
        if value:
            overrides[key] = value
    given = (
        ("max_time_s", max_time),
        ("target_rel_ci", target_ci),
        ("isolate", isolate),
        ("threads", threads),
        ("device_timing", _device_timing(device_timing)),
        ("remeasure_noisy", remeasure_noisy),
    )
    for key, value in given:
        if value is not None:
            measure[key] = value
    if measure:
        overrides["measure"] = measure
    if no_check:
        overrides["check_outputs"] = False
    if no_accuracy:
        overrides["accuracy"] = False
    suite = load_suite(suite_file, profile=profile, overrides=overrides)
    # Progress and per-benchmark lines go to stderr, so that --json stdout stays clean.
    console = command_line.stderr if json_output else command_line.stdout
    # The libraries' own stderr (TensorFlow/absl C++ lines, torch warnings) goes to the log.
    with library_output(console, debug=command_line.debug) as console:
        report = run_with_progress(suite, console)
    return print_report(report, console, as_json=json_output)
