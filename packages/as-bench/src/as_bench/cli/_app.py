"""The ``as-bench`` typer app, its global options and the shared error plumbing.

Each command lives in its own module of :mod:`as_bench.cli` and registers itself on
:data:`app` with ``@app.command()``; :data:`command_line`
(:class:`as_core.cli.CommandLine`) runs the app and turns what a command raises into one
message on stderr and the documented exit code.
"""

from __future__ import annotations

import typer

from as_bench._version import __version__
from as_bench.exceptions import AsBenchError, SuiteError, ThresholdError, WorkloadError
from as_core.cli import CommandLine

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


def _start(debug: bool) -> None:
    import as_logging  # the CLI is an application: it, not the library, sets up logging

    as_logging.configure("DEBUG" if debug else "WARNING", rich_tracebacks=debug)


command_line.add_root_options(
    __version__,
    help="Benchmark ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs.",
    on_start=_start,
)
