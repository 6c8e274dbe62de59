"""The ``as-bench`` typer app, its global options and the shared error plumbing.

Each command lives in its own module of :mod:`as_bench.cli` and registers itself on
:data:`app` with ``@app.command()``; :data:`command_line`
(:class:`as_core.cli.CommandLine`) runs the app and turns what a command raises into one
message on stderr and the documented exit code.
"""

from __future__ import annotations

from typing import Annotated

import typer

from as_bench._version import __version__
from as_bench.exceptions import AsBenchError, SuiteError, ThresholdError, WorkloadError
from as_core.cli import CommandLine, version_callback

__all__ = ["USAGE_ERRORS", "app", "command_line"]

app = typer.Typer(
    name="as-bench",
    help="Benchmark ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs.",
    no_args_is_help=True,
    add_completion=False,
    # command_line.run prints errors itself: one line, the traceback only with --debug.
    pretty_exceptions_enable=False,
)

#: as-bench errors that mean "what you typed is wrong" rather than "it did not work".
USAGE_ERRORS: tuple[type[AsBenchError], ...] = (SuiteError, ThresholdError, WorkloadError)

#: Runs :data:`app`; ``command_line.stdout`` is where commands print their output.
command_line = CommandLine(app, "as-bench", package_error=AsBenchError, usage_errors=USAGE_ERRORS)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logging.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback("as-bench", __version__),
            is_eager=True,
            help="Show the version.",
        ),
    ] = False,
) -> None:
    """Benchmark ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs."""
    command_line.debug = debug
    import as_logging  # the CLI is an application: it, not the library, sets up logging

    as_logging.configure("DEBUG" if debug else "WARNING", rich_tracebacks=debug)
