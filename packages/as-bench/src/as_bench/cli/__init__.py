"""The ``as-bench`` command line (also ``python -m as_bench``).

One module per command: :mod:`~as_bench.cli.hw`, :mod:`~as_bench.cli.run`,
:mod:`~as_bench.cli.compare` (the regression gate), :mod:`~as_bench.cli.runs`
(``as-bench list``: the runs of a store), :mod:`~as_bench.cli.plot` and
:mod:`~as_bench.cli.report`; :mod:`~as_bench.cli._app` holds the typer app and the
global ``--debug`` and ``--version`` options.

Exit codes: 0 success; 1 a failure (an as-bench error, or an unexpected one); 2 a usage
error (an unknown option or command, a bad value, a suite, workload or threshold spec
that is wrong). Errors are one line on stderr with the cause and a hint; the global
``--debug`` adds the traceback. Commands raise; :func:`main` (through
:class:`as_core.cli.CommandLine`) turns what they raise into the message and the exit
code, so a new command is only a module with a function under ``@app.command()``.

Importing this package registers every command but imports no torch, polars or
matplotlib: each command imports what it needs when it runs.
"""

from __future__ import annotations

# Importing the command modules registers their commands on the app, in this order.
from as_bench.cli import hw, run, compare, runs, plot, report  # noqa: F401  # isort: skip
from as_bench.cli._app import app, command_line

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command line: the ``as-bench`` console script and ``python -m as_bench``.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.
    """
    command_line.run(argv)
