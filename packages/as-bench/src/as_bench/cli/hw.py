"""``as-bench hw``: the hardware, OS, libraries and thread settings of this machine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from as_bench.cli._app import app, command_line

__all__ = ["hw"]


@app.command("hw")
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
    command_line.stdout.print(table)
