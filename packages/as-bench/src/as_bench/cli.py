"""The ``as-bench`` command line (also ``python -m as_bench``).

Exit codes: 0 success; 1 a failure (an as-bench error, or an unexpected one); 2 a usage
error (an unknown option or command, a bad value, a suite or workload spec that is
wrong). Errors are one line on stderr with the cause and a hint; the global ``--debug``
adds the traceback.

Commands raise; :func:`main` turns what they raise into the message and the exit code,
so a new command is only a function under ``@app.command()``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.traceback import Traceback

from as_bench._version import __version__
from as_bench.exceptions import (
    AsBenchError,
    MissingExtraError,
    SuiteError,
    ThresholdError,
    WorkloadError,
)

__all__ = ["app", "main"]

log = logging.getLogger(__name__)

app = typer.Typer(
    name="as-bench",
    help="Benchmark ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs.",
    no_args_is_help=True,
    add_completion=False,
    # main() prints errors itself: one line, and the traceback only with --debug.
    pretty_exceptions_enable=False,
)

# soft_wrap: never break a path, a version or a chip name to fit the terminal.
_stdout = Console(soft_wrap=True, highlight=False, emoji=False)
_stderr = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)

# as-bench errors that mean "what you typed is wrong" rather than "it did not work".
USAGE_ERRORS: tuple[type[AsBenchError], ...] = (SuiteError, ThresholdError, WorkloadError)


@dataclass
class _Options:
    """Global options, set by the root callback before any command runs."""

    debug: bool = False


_options = _Options()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"as-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logging.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Benchmark ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs."""
    _options.debug = debug
    import as_logging  # the CLI is an application: it, not the library, sets up logging

    as_logging.configure("DEBUG" if debug else "WARNING", rich_tracebacks=debug)


@app.command()
def hw(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the HardwareInfo record as JSON.")
    ] = False,
) -> None:
    """Show the hardware, OS, libraries and thread settings results are recorded with."""
    from as_bench.probe import probe, summary_rows

    info = probe()
    if json_output:
        # Plain text, not rich: the output is for programs and must not be re-wrapped.
        typer.echo(info.model_dump_json(indent=2))
        return
    table = Table(title="as-bench hw", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for label, value in summary_rows(info):
        style = "yellow" if label == "Warning" else None
        table.add_row(escape(label), escape(value), style=style)
    _stdout.print(table)


@app.command()
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
        typer.Option("--workload", "-w", help="Workload name or pkg.module:factory (repeat)."),
    ] = None,
    backend: Annotated[
        list[str] | None, typer.Option("--backend", "-b", help="Backend name (repeat).")
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", "-d", help="Device: cpu, cuda:N, mps, mlx.")
    ] = None,
    batch_size: Annotated[
        list[int] | None, typer.Option("--batch-size", "-B", help="Batch size (repeat).")
    ] = None,
    results_dir: Annotated[
        Path | None, typer.Option("--results-dir", "-o", help="Result store folder.")
    ] = None,
    max_time: Annotated[
        float | None, typer.Option("--max-time", help="Most seconds of sampling per benchmark.")
    ] = None,
    target_ci: Annotated[
        float | None,
        typer.Option("--target-ci", help="Stop at this relative CI half-width (0.01 = ±1%)."),
    ] = None,
    isolate: Annotated[
        bool | None,
        typer.Option("--isolate/--no-isolate", help="Each benchmark in a fresh process."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Fix the number of compute threads.")
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip comparing outputs with eager PyTorch.")
    ] = False,
    no_accuracy: Annotated[
        bool, typer.Option("--no-accuracy", help="Skip scoring on held-out data.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> int:
    """Measure workloads on every backend and device available (or those of a suite file)."""
    from as_bench._cli_run import print_report, run_with_progress
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
    report = run_with_progress(suite, _stderr if json_output else _stdout)
    return print_report(report, _stderr if json_output else _stdout, as_json=json_output)


@app.command()
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
    from as_bench._cli_compare import run_compare

    return run_compare(
        base,
        new,
        fail_on=fail_on or [],
        thresholds=thresholds,
        alpha=alpha,
        min_effect=min_effect,
        json_output=json_output,
        console=_stdout,
    )


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="Results: a store folder or an export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the figures.")],
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="png, svg or pdf (repeat; default png)."),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Also plot the comparison with these results.")
    ] = None,
) -> int:
    """Draw latency distributions, throughput, memory and the accuracy-latency-size Pareto."""
    from as_bench._cli_plot import run_plot

    return run_plot(results, out, formats=fmt or ["png"], baseline=baseline, console=_stdout)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results: a store folder or an export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md and report.html.")],
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Compare against these results too.")
    ] = None,
) -> int:
    """Write a Markdown and a self-contained HTML report with a recommendation per workload."""
    from as_bench._cli_report import run_report

    return run_report(results, out, baseline=baseline, console=_stdout)


def _hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        return hint
    if isinstance(exc, MissingExtraError):
        return "install the extra named above"
    return "run again with --debug for the traceback"


def _fail(exc: BaseException, code: int) -> NoReturn:
    if _options.debug:
        _stderr.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
    prefix = "" if isinstance(exc, AsBenchError) else f"unexpected {type(exc).__name__}: "
    _stderr.print(
        f"[bold red]error:[/] {escape(prefix + str(exc))} [dim](hint: {escape(_hint(exc))})[/]"
    )
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the command line: the ``as-bench`` console script and ``python -m as_bench``.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.
    """
    _options.debug = False
    try:
        # standalone_mode=False: errors come back here instead of click printing them,
        # so that they all get the same one-line form and exit codes.
        result = app(args=argv, prog_name="as-bench", standalone_mode=False)
    except typer.Abort:
        _stderr.print("[bold red]aborted[/]")
        sys.exit(1)
    except typer.TyperException as exc:
        # Usage errors (exit code 2) and other command-line errors: typer's own message
        # names the problem and points at --help.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _stderr.print(f"[bold red]error:[/] {escape(exc.format_message())}")
        sys.exit(exc.exit_code)
    except USAGE_ERRORS as exc:
        _fail(exc, 2)
    except Exception as exc:
        _fail(exc, 1)
    sys.exit(result if isinstance(result, int) else 0)
