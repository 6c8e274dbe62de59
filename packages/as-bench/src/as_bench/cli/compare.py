"""``as-bench compare BASE NEW``: the comparison table, and the regression gate's exit code.

Exit codes (through :func:`as_bench.cli.main`): 0 when nothing failed the gate (also for
improvements, and always without thresholds); 1 when a benchmark regressed significantly
beyond a threshold, or a side could not be read; 2 for a bad ``--fail-on`` expression,
thresholds file, ``--alpha`` or ``--min-effect``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from as_bench.cli._app import app, command_line
from as_core.fmt import format_seconds

if TYPE_CHECKING:  # the gate's package is imported when the command runs
    from as_bench.compare import BenchmarkComparison, Comparison, ThresholdSet

__all__ = ["compare", "comparison_table", "print_comparison", "run_compare", "threshold_set"]

_CHANGE_STYLE = {"regression": "red", "improvement": "green", "unchanged": "dim"}


def threshold_set(fail_on: list[str], thresholds: Path | None) -> ThresholdSet | None:
    """The thresholds of a command line: ``--fail-on`` expressions and a thresholds file.

    ``--fail-on`` (repeatable; commas also separate) gives the default thresholds; with a
    file too, they replace the file's ``default`` and the file's per-benchmark overrides
    still apply. ``None`` when neither is given.

    Raises:
        ThresholdError: A bad expression or thresholds file.
    """
    from as_bench.compare import ThresholdSet, load_thresholds, parse_threshold

    parsed = [
        parse_threshold(part)
        for text in fail_on
        # An empty expression is parsed (and refused) rather than dropped.
        for part in ([p for p in text.split(",") if p.strip()] or [text])
    ]
    if thresholds is None:
        return ThresholdSet(default=parsed) if parsed else None
    loaded = load_thresholds(thresholds)
    return loaded.model_copy(update={"default": parsed}) if parsed else loaded


def _short_timer(label: str) -> str:
    return label.split(" (")[0]


def _ratio_text(item: BenchmarkComparison) -> str:
    # One space only: in a narrow terminal the interval wraps under the ratio, whole.
    return f"{item.ratio:.3f} [{item.ratio_ci_low:.3f}…{item.ratio_ci_high:.3f}]"


def _p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def _gate_text(item: BenchmarkComparison) -> str:
    if not item.thresholds:
        return "[dim]-[/]"
    if item.failed:
        return "[bold red]FAIL[/]"
    if item.inconclusive:
        return "[yellow]noisy[/]"
    return "[green]pass[/]"


def comparison_table(comparison: Comparison, *, gated: bool = True) -> Table:
    """The comparison as a rich table: one row per benchmark, missing ones last.

    The timer gets a column only when the benchmarks differ in it (else the caption names
    it), and the gate one only when ``gated``, so that the table fits 80 columns more often.
    Benchmarks on one side only say so in the change column and are never gated.
    """
    timers = {item.timer for item in comparison.items}
    one_timer = len(timers) == 1
    legend = "ratio: new/base of medians [95% bootstrap CI]; p: Mann-Whitney U, two-sided"
    if one_timer:
        legend = f"times: {next(iter(timers))}; {legend}"
    table = Table(
        title="as-bench compare",
        title_justify="left",
        caption=escape(legend),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    longest = max((len(item.benchmark) for item in comparison.items), default=9)
    table.add_column("benchmark", overflow="fold", min_width=min(longest, 18))
    if not one_timer:
        table.add_column("timer")
    table.add_column("base", justify="right", no_wrap=True)
    table.add_column("new", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right")
    table.add_column("p", justify="right", no_wrap=True)
    table.add_column("change", no_wrap=True)
    if gated:
        table.add_column("gate", no_wrap=True)
    for item in comparison.items:
        row = [escape(item.benchmark)]
        if not one_timer:
            row.append(escape(_short_timer(item.timer)))
        row += [
            format_seconds(item.base_median_s),
            format_seconds(item.new_median_s),
            _ratio_text(item),
            _p_text(item.p_value),
            f"[{_CHANGE_STYLE[item.change]}]{item.change}[/]",
        ]
        if gated:
            row.append(_gate_text(item))
        table.add_row(*row)
    blanks = 4 if one_timer else 5
    for side, names in (("base", comparison.only_in_base), ("new", comparison.only_in_new)):
        for name in names:
            row = [escape(name), *([""] * blanks), f"[yellow]{side} only[/]"]
            if gated:
                row.append("[dim]-[/]")
            table.add_row(*row)
    return table


def print_comparison(comparison: Comparison, console: Console, *, gated: bool) -> None:
    """Warnings, the table, the geometric mean, then one line per failure and a verdict."""
    for warning in comparison.environment_warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print(comparison_table(comparison, gated=gated))
    if comparison.geomean_ratio is not None:
        ratio = comparison.geomean_ratio
        console.print(
            f"geometric mean ratio (new/base) over {len(comparison.items)} benchmark(s): "
            f"{ratio:.3f} ({(ratio - 1) * 100:+.1f}%)"
        )
    missing = len(comparison.only_in_base) + len(comparison.only_in_new)
    if missing:
        console.print(
            f"[yellow]{missing} benchmark(s) are on one side only: reported, not gated[/]"
        )
    if not gated:
        console.print("[dim]no thresholds: nothing gated (gate with --fail-on median:5%)[/]")
        return
    for item in comparison.failures:
        console.print(
            f"[bold red]REGRESSION[/] {escape(item.benchmark)}: {escape('; '.join(item.reasons))}"
        )
    for item in comparison.items:
        if item.inconclusive:
            console.print(
                f"[yellow]INCONCLUSIVE[/] {escape(item.benchmark)}: "
                f"{escape('; '.join(item.reasons))}; not gated because the "
                f"{escape(' and the '.join(item.noisy))}: rerun on a quiet machine"
            )
    failures = len(comparison.failures)
    if failures:
        console.print(
            f"[bold red]FAILED:[/] {failures} benchmark(s) regressed significantly beyond "
            "their thresholds"
        )
    else:
        console.print(
            "[green]passed:[/] no significant regression beyond the thresholds "
            f"(alpha {comparison.alpha:g})"
        )


def run_compare(
    base: Path,
    new: Path,
    *,
    fail_on: list[str],
    thresholds: Path | None,
    alpha: float,
    min_effect: float,
    json_output: bool,
    console: Console,
) -> int:
    """Compare two sides and print the outcome; the exit code of ``as-bench compare``.

    Args:
        base: The baseline: a store folder, a result file or an export.
        new: The candidate, likewise.
        fail_on: Threshold expressions (``median:5%``); the gate's defaults.
        thresholds: A thresholds file with defaults and per-benchmark overrides.
        alpha: Significance level of the Mann-Whitney U test.
        min_effect: Smallest relative change of the median called a change.
        json_output: Print the :class:`~as_bench.compare.Comparison` as JSON, and nothing
            else, on ``console``.
        console: Where to print.

    Returns:
        1 when a benchmark failed the gate, else 0.

    Raises:
        ThresholdError: A bad threshold, thresholds file, ``alpha`` or ``min_effect``.
        ResultStoreError: A side could not be read or holds no results.
        CorruptResultError: A result file of a side is corrupt.
    """
    from as_bench.compare import compare_results, load_side

    # Thresholds first: a typo in --fail-on is reported before any file is read.
    gates = threshold_set(fail_on, thresholds)
    comparison = compare_results(
        load_side(base),
        load_side(new),
        thresholds=gates,
        alpha=alpha,
        min_effect=min_effect,
    )
    if json_output:
        # out(): no markup, highlighting or wrapping, so the text stays valid JSON.
        console.out(comparison.model_dump_json(indent=2), highlight=False)
    else:
        if not console.is_terminal:
            # Piped or logged: rich would fold benchmark names to fit 80 columns.
            console.width = max(console.width, 160)
        print_comparison(comparison, console, gated=gates is not None and not gates.empty)
    return 1 if comparison.failures else 0


@app.command("compare")
def compare(
    base: Annotated[
        Path, typer.Argument(help="Baseline: a result file, an export or a store folder.")
    ],
    new: Annotated[
        Path, typer.Argument(help="Candidate: a result file, an export or a store folder.")
    ],
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Fail on a significant regression beyond this: median:5%, mean:3%, "
            "p95:10%, median:2ms (repeat).",
        ),
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option("--thresholds", help="Per-benchmark thresholds (YAML, JSON or TOML)."),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level of the Mann-Whitney U test.")
    ] = 0.05,
    min_effect: Annotated[
        float,
        typer.Option("--min-effect", help="Smallest relative change reported as a change."),
    ] = 0.01,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON.")
    ] = False,
) -> int:
    """Compare two sets of results per benchmark; with --fail-on, gate on regressions."""
    return run_compare(
        base,
        new,
        fail_on=fail_on or [],
        thresholds=thresholds,
        alpha=alpha,
        min_effect=min_effect,
        json_output=json_output,
        console=command_line.stdout,
    )
