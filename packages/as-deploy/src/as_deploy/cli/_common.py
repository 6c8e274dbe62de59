"""What every ``as-deploy`` command shares: the typer app, its error handling, the consoles.

The command modules (:mod:`~as_deploy.cli.serve`, :mod:`~as_deploy.cli.export`,
:mod:`~as_deploy.cli.dockerfile`, :mod:`~as_deploy.cli.pack`) import from here, and
:mod:`as_deploy.cli` imports them: nothing here imports a command, so there is no circle.
"""

from __future__ import annotations

import typer
from rich.console import Console

from as_core.cli import CommandLine
from as_deploy._version import __version__
from as_deploy.exceptions import AsDeployError, InvalidNameError, UsageError

__all__ = ["USAGE_ERRORS", "app", "command_line", "stdout"]

app = typer.Typer(
    name="as-deploy",
    help="Export models with parity checks and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: as-deploy errors that mean "what you typed is wrong" rather than "it did not work".
USAGE_ERRORS: tuple[type[Exception], ...] = (InvalidNameError, UsageError)

#: Runs :data:`app`: one ``error: ... (hint: ...)`` line and the documented exit code.
command_line = CommandLine(app, "as-deploy", package_error=AsDeployError, usage_errors=USAGE_ERRORS)

#: Where commands print their output.
stdout: Console = command_line.stdout


def _start(debug: bool) -> None:
    import as_logging  # the CLI is an application: it, not the library, sets up logging

    as_logging.configure("DEBUG" if debug else "INFO", rich_tracebacks=debug)


command_line.add_root_options(
    __version__, help="Export models with parity checks and serve them.", on_start=_start
)
