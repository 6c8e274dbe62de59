"""``as-bench list``: the runs a result store holds, numbered per machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from as_bench.cli._app import app, command_line
from as_bench.exceptions import ResultStoreError

if TYPE_CHECKING:
    from as_bench.results import RunSummary

__all__ = ["list_runs", "runs_table"]


class _NoStoreError(ResultStoreError):
    """The folder is not a result store."""

    hint = "as-bench run -o DIR or pytest --as-bench-store DIR writes one"


def runs_table(runs: list[RunSummary], *, unnumbered: int = 0) -> Table:
    """The runs as a rich table, oldest first; ``unnumbered`` results are counted below."""
    caption = "compare one with: as-bench compare STORE@RUN NEW"
    if unnumbered:
        caption += f"; {unnumbered} older result(s) belong to no run"
    table = Table(
        title="as-bench runs",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("run", "machine", "started (UTC)", "results", "source", "commit"):
        table.add_column(column, no_wrap=column != "machine")
    for run in runs:
        commit = "-" if run.commit is None else run.commit + (" (dirty)" if run.dirty else "")
        table.add_row(
            run.run,
            escape(run.machine),
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            str(run.results),
            escape(run.source),
            commit,
        )
    return table


@app.command("list")
def list_runs(
    store: Annotated[
        Path,
        typer.Argument(help="The result store folder.", show_default=True),
    ] = Path("as-bench-results"),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the runs as JSON on stdout.")
    ] = False,
) -> int:
    """List the runs in a result store: number, machine, when, how many results, commit."""
    from as_bench.results import ResultStore

    if not store.is_dir():
        raise _NoStoreError(f"no result store at {store}: not a folder")
    results = ResultStore(store, create=False).load(on_error="collect")
    from as_bench.results import summarize_runs

    runs = summarize_runs(results)
    unnumbered = sum(1 for r in results if r.run is None)
    if json_output:
        rows = [
            {
                "run": r.run,
                "machine": r.machine,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat(),
                "results": r.results,
                "benchmarks": r.benchmarks,
                "commit": r.commit,
                "dirty": r.dirty,
                "source": r.source,
            }
            for r in runs
        ]
        command_line.stdout.print_json(json.dumps({"runs": rows, "unnumbered": unnumbered}))
        return 0
    if not runs:
        command_line.stdout.print(
            f"no numbered runs in {escape(str(store))}"
            + (f" ({unnumbered} older result(s) belong to no run)" if unnumbered else "")
        )
        return 0
    command_line.stdout.print(runs_table(runs, unnumbered=unnumbered))
    return 0
