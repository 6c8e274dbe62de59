"""``as-bench compare BASE NEW``: the comparison table, and the regression gate's exit code.

Exit codes (through :func:`as_bench.cli.main`):

- 0 (:data:`EXIT_PASSED`): nothing failed the gate (also for improvements, and always
  without thresholds); with ``--allow-inconclusive``, also an inconclusive gate;
- 1 (:data:`EXIT_REGRESSION`): a benchmark regressed significantly beyond a threshold (or
  a side could not be read: a corrupt file, an unknown format);
- 2 (:data:`EXIT_USAGE`): a bad ``--fail-on`` expression, thresholds file, ``--alpha`` or
  ``--min-effect``, or an unknown option;
- 3 (:data:`EXIT_INCONCLUSIVE`): no regression failed, but one exceeded a threshold on a
  run too noisy to judge (``INCONCLUSIVE``);
- 4 (:data:`EXIT_NOTHING_COMPARED`): nothing was compared: a side is missing or empty, or
  the sides have no benchmark in common (:class:`~as_bench.exceptions.NothingToCompareError`).
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
from as_bench.exceptions import NothingToCompareError
from as_core.fmt import format_seconds

if TYPE_CHECKING:  # the gate's package is imported when the command runs
    from as_bench.compare import BenchmarkComparison, Comparison, ThresholdSet

__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_NOTHING_COMPARED",
    "EXIT_PASSED",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "compare",
    "comparison_table",
    "print_comparison",
    "run_compare",
    "threshold_set",
]

EXIT_PASSED = 0
"""Nothing failed the gate (an inconclusive one too, with ``--allow-inconclusive``)."""
EXIT_REGRESSION = 1
"""A benchmark regressed significantly beyond a threshold."""
EXIT_USAGE = 2
"""A bad option, threshold or thresholds file (as-core's usage-error code)."""
EXIT_INCONCLUSIVE = 3
"""A regression beyond a threshold was measured on a run too noisy to judge."""
EXIT_NOTHING_COMPARED = 4
"""A side is missing or empty, or the sides have no benchmark in common."""

_EXIT_HELP = (
    "Exit status: 0 passed; 1 a significant regression beyond a threshold; 2 a usage "
    "error (bad option or threshold); 3 inconclusive: a regression beyond a threshold "
    "measured on a noisy run (IQR at least 25% of the median), accepted (0) with "
    "--allow-inconclusive; 4 nothing compared: a side missing or empty, or no benchmark "
    "in common."
)

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
    # A dagger marks the busy-machine rule's lower decile (the caption says so).
    mark = "†" if item.estimator != "median" else ""
    return f"{item.ratio:.3f}{mark} [{item.ratio_ci_low:.3f}…{item.ratio_ci_high:.3f}]"


def _p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def _gate_text(item: BenchmarkComparison) -> str:
    if not item.thresholds:
        return "[dim]-[/]"
    if item.failed:
        return "[bold red]FAIL[/]"
    if item.inconclusive:
        return "[yellow]INCONCLUSIVE[/]"
    return "[green]pass[/]"


def comparison_table(comparison: Comparison, *, gated: bool = True) -> Table:
    """The comparison as a rich table: one row per benchmark, missing ones last.

    The timer gets a column only when the benchmarks differ in it (else the caption names
    it), and the gate one only when ``gated``, so that the table fits 80 columns more often.
    Benchmarks on one side only say so in the change column and are never gated.
    """
    from as_bench.compare import NOISY_REL_IQR

    timers = {item.timer for item in comparison.items}
    one_timer = len(timers) == 1
    legend = "ratio: new/base of medians [95% bootstrap CI]; p: Mann-Whitney U, two-sided"
    if any(item.estimator != "median" for item in comparison.items):
        legend += (
            f"; † busy run (IQR ≥ {NOISY_REL_IQR:.0%} of the median): base, new and ratio "
            "are of the lower decile, which waiting for a core does not move"
        )
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
            format_seconds(item.base_estimate_s),
            format_seconds(item.new_estimate_s),
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


def print_comparison(
    comparison: Comparison, console: Console, *, gated: bool, allow_inconclusive: bool = False
) -> None:
    """Warnings, the table, the geometric mean, then one line per failure and a verdict.

    An inconclusive gate's verdict is ``INCONCLUSIVE`` (never "passed"), or with
    ``allow_inconclusive`` says that the inconclusive benchmarks were accepted.
    """
    from as_bench.compare import inconclusive_reason

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
    if not comparison.items:
        console.print("[bold red]nothing compared:[/] no benchmark is on both sides")
        return
    if not gated:
        console.print("[dim]no thresholds: nothing gated (gate with --fail-on median:5%)[/]")
        return
    for item in comparison.failures:
        console.print(
            f"[bold red]REGRESSION[/] {escape(item.benchmark)}: {escape('; '.join(item.reasons))}"
        )
    for item in comparison.inconclusive:
        console.print(
            f"[yellow]INCONCLUSIVE[/] {escape(item.benchmark)}: {escape(inconclusive_reason(item))}"
        )
    failures = len(comparison.failures)
    inconclusive = len(comparison.inconclusive)
    if failures:
        console.print(
            f"[bold red]FAILED:[/] {failures} benchmark(s) regressed significantly beyond "
            "their thresholds"
        )
    elif inconclusive and not allow_inconclusive:
        console.print(
            f"[bold yellow]INCONCLUSIVE:[/] {inconclusive} benchmark(s) regressed beyond "
            "their thresholds on runs too noisy to judge: rerun on a quiet machine, or "
            "accept with --allow-inconclusive"
        )
    elif inconclusive:
        console.print(
            f"[yellow]accepted:[/] {inconclusive} inconclusive benchmark(s) "
            "(--allow-inconclusive); no other significant regression beyond the thresholds "
            f"(alpha {comparison.alpha:g})"
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
    allow_inconclusive: bool = False,
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
        allow_inconclusive: Accept an inconclusive gate (exit 0 instead of 3).

    Returns:
        :data:`EXIT_REGRESSION` when a benchmark failed the gate, else
        :data:`EXIT_INCONCLUSIVE` when one was inconclusive (unless
        ``allow_inconclusive``), else :data:`EXIT_PASSED`.

    Raises:
        ThresholdError: A bad threshold, thresholds file, ``alpha`` or ``min_effect``.
        NothingToCompareError: A side is missing or holds no results, or the sides have
            no benchmark in common (after the table, which lists each side's names).
        ResultStoreError: A side could not be read.
        CorruptResultError: A result file of a side is corrupt.
    """
    from as_bench.compare import compare_results, read_side

    # Thresholds first: a typo in --fail-on is reported before any file is read.
    gates = threshold_set(fail_on, thresholds)
    base_side, new_side = read_side(base), read_side(new)
    comparison = compare_results(
        base_side.results,
        new_side.results,
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
        gated = gates is not None and not gates.empty
        console.print(f"base: {escape(base_side.describe())}", highlight=False)
        console.print(f"new:  {escape(new_side.describe())}", highlight=False)
        print_comparison(comparison, console, gated=gated, allow_inconclusive=allow_inconclusive)
    if not comparison.items:
        raise NothingToCompareError(
            f"nothing compared: {base} and {new} have no benchmark in common with raw "
            f"samples on both sides (base: {_names(comparison.only_in_base)}; new: "
            f"{_names(comparison.only_in_new)}); expected results of the same benchmarks"
        )
    if comparison.failures:
        return EXIT_REGRESSION
    if comparison.inconclusive and not allow_inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_PASSED


def _names(names: list[str], most: int = 5) -> str:
    if not names:
        return "none of its own"
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@app.command("compare")
def compare(
    base: Annotated[
        Path,
        typer.Argument(
            help="Baseline: a result file, an export or a store folder (its latest run; "
            "PATH@RUN for another, see as-bench list)."
        ),
    ],
    new: Annotated[
        Path,
        typer.Argument(help="Candidate: a result file, an export or a store folder, likewise."),
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
    allow_inconclusive: Annotated[
        bool,
        typer.Option(
            "--allow-inconclusive",
            help="Accept an inconclusive gate (a regression on a noisy run): exit 0, not 3; "
            "the verdict is still printed.",
        ),
    ] = False,
) -> int:
    """Compare two sets of results per benchmark; with --fail-on, gate on regressions."""
    try:
        return run_compare(
            base,
            new,
            fail_on=fail_on or [],
            thresholds=thresholds,
            alpha=alpha,
            min_effect=min_effect,
            json_output=json_output,
            console=command_line.stdout,
            allow_inconclusive=allow_inconclusive,
        )
    except NothingToCompareError as exc:
        command_line.fail(exc, EXIT_NOTHING_COMPARED)


compare.__doc__ = f"{compare.__doc__}\n\n{_EXIT_HELP}"
