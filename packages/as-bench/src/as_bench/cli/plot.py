"""``as-bench plot``: read results, draw every figure that has data, list the files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from as_bench.cli._app import app, command_line

__all__ = ["plot", "run_plot"]

logger = logging.getLogger(__name__)


def _error(message: str, hint: str) -> None:
    # The same one-line form as the command line's errors, on stderr so stdout lists
    # only files.
    command_line.stderr.print(
        f"[bold red]error:[/] {escape(message)} [dim](hint: {escape(hint)})[/]"
    )


def run_plot(
    results: Path,
    out: Path,
    *,
    formats: list[str],
    baseline: Path | None,
    console: Console,
) -> int:
    """Draw the figures of ``results`` into ``out`` and print the files written.

    Args:
        results: A store folder, one result's JSON file or a JSON export.
        out: The folder for the figures (created when missing).
        formats: Figure formats: ``png``, ``svg``, ``pdf``.
        baseline: Results to compare with; adds the comparison figure.
        console: Where the list of files goes.

    Returns:
        0 when the figures were written; 1 when there are no results to plot; 2 when a
        format is not a figure format.

    Raises:
        ResultStoreError: ``results`` or ``baseline`` cannot be read (the command line
            prints it in one line with exit status 1).
    """
    # Drawing needs matplotlib: imported here, not when the command line starts.
    from as_bench.plots import render_all
    from as_bench.plots._files import check_formats
    from as_bench.results import read_result_objects

    try:
        fmts = check_formats(formats)
    except ValueError as exc:
        _error(str(exc), "pass --format png, svg or pdf (repeat for several)")
        return 2
    loaded = read_result_objects(results)
    if not loaded:
        _error(f"no results in {results}", "run `as-bench run` first, or point at its results")
        return 1
    comparison = None
    if baseline is not None:
        from as_bench.compare import compare_results, load_side

        comparison = compare_results(load_side(baseline), loaded).items
        if not comparison:
            logger.warning("%s and %s share no benchmark: no comparison", baseline, results)
    written = render_all(loaded, out, formats=fmts, comparison=comparison)
    for name, paths in written.items():
        console.print(f"{name}: " + ", ".join(escape(str(path)) for path in paths))
    skipped = [name for name in ("memory", "pareto") if name not in written]
    if skipped:
        console.print(f"[dim]no data for: {', '.join(skipped)}[/]")
    return 0


@app.command("plot")
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
    return run_plot(
        results, out, formats=fmt or ["png"], baseline=baseline, console=command_line.stdout
    )
