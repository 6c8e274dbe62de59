"""``as-bench report``: load results (and a baseline), write the report, print where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from as_bench.cli._app import app, command_line
from as_bench.exceptions import ResultStoreError

__all__ = ["report", "run_report"]


class _NoResultsError(ResultStoreError):
    """The results folder or file holds no results."""

    hint = "measure first: as-bench run -o DIR, then as-bench report DIR -o REPORT"


def run_report(results: Path, out: Path, *, baseline: Path | None, console: Console) -> int:
    """Write ``report.md`` and ``report.html`` for the results at ``results`` into ``out``.

    Args:
        results: A store folder or a JSON export.
        out: The report's folder.
        baseline: Results to compare against (any form ``as-bench compare`` reads).
        console: Where to print the paths.

    Returns:
        The exit status: 0.

    Raises:
        ResultStoreError: No results at ``results`` (the CLI prints one line, exit 1), or
            they cannot be read.
    """
    from as_bench.report import build_report
    from as_bench.results import read_result_objects

    loaded = read_result_objects(results)
    if not loaded:
        raise _NoResultsError(f"no results in {results}: nothing to report")
    base = None
    if baseline is not None:
        from as_bench.compare import load_side

        base = load_side(baseline)
        if not base:
            raise _NoResultsError(f"no results in the baseline {baseline}")
    files = build_report(loaded, out, baseline=base)
    console.print(f"report of {len(loaded)} result(s):")
    console.print(f"  {escape(str(files.markdown))}")
    console.print(f"  {escape(str(files.html))}")
    console.print(f"  {len(files.images)} figure(s) in {escape(str(out / 'images'))}")
    return 0


@app.command("report")
def report(
    results: Annotated[Path, typer.Argument(help="Results: a store folder or an export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md and report.html.")],
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Compare against these results too.")
    ] = None,
) -> int:
    """Write a Markdown and a self-contained HTML report with a recommendation per workload."""
    return run_report(results, out, baseline=baseline, console=command_line.stdout)
