"""The ``as-deploy`` command line (also ``python -m as_deploy``) and the ``serve`` script.

Commands: ``serve`` (the model server), ``export`` (a model to ONNX, Core ML or TFLite with
a parity check, into a repository), ``dockerfile`` (a Dockerfile for a repository) and
``pack`` (export, parity, repository and Dockerfile in one go).

Exit codes: 0 success; 1 a failure; 2 a usage error (an unknown option, a bad value, an
invalid model name). Errors are one line on stderr with the cause and a hint; the global
``--debug`` adds the traceback. Each command lives in its own ``_cli_<name>`` module that
registers itself on :data:`app`; commands raise and :func:`main` turns what they raise into
the message and the exit code.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.traceback import Traceback

from as_deploy._version import __version__
from as_deploy.exceptions import AsDeployError, InvalidNameError, UsageError

__all__ = ["app", "main", "serve_main"]

app = typer.Typer(
    name="as-deploy",
    help="Export models with parity checks and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stdout = Console(soft_wrap=True, highlight=False, emoji=False)
stderr = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)

# as-deploy errors that mean "what you typed is wrong" rather than "it did not work".
USAGE_ERRORS: tuple[type[Exception], ...] = (InvalidNameError, UsageError)


@dataclass
class _Options:
    debug: bool = False


options = _Options()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"as-deploy {__version__}")
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
    """Export models with parity checks and serve them."""
    options.debug = debug
    import as_logging  # the CLI is an application: it, not the library, sets up logging

    as_logging.configure("DEBUG" if debug else "INFO", rich_tracebacks=debug)


def _register_commands() -> None:
    # Each module adds its command to ``app`` when imported; importing them is cheap (the
    # heavy libraries load inside the commands).
    from as_deploy import _cli_dockerfile, _cli_export, _cli_pack, _cli_serve

    for module in (_cli_serve, _cli_export, _cli_dockerfile, _cli_pack):
        module.register(app)


_register_commands()


def _hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        return hint
    return "run again with --debug for the traceback"


def _fail(exc: BaseException, code: int) -> NoReturn:
    if options.debug:
        stderr.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
    prefix = "" if isinstance(exc, AsDeployError) else f"unexpected {type(exc).__name__}: "
    stderr.print(
        f"[bold red]error:[/] {escape(prefix + str(exc))} [dim](hint: {escape(_hint(exc))})[/]"
    )
    sys.exit(code)


def main(argv: list[str] | None = None, prog_name: str = "as-deploy") -> None:
    """Run the command line: the ``as-deploy`` console script and ``python -m as_deploy``.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.
        prog_name: The program name shown in help and usage messages.
    """
    options.debug = False
    try:
        # standalone_mode=False: errors come back here instead of click printing them,
        # so that they all get the same one-line form and exit codes.
        result = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except typer.Abort:
        stderr.print("[bold red]aborted[/]")
        sys.exit(1)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            stderr.print(f"[bold red]error:[/] {escape(exc.format_message())}")
        sys.exit(exc.exit_code)
    except USAGE_ERRORS as exc:
        _fail(exc, 2)
    except Exception as exc:
        _fail(exc, 1)
    sys.exit(result if isinstance(result, int) else 0)


def serve_main(argv: list[str] | None = None) -> None:
    """The ``serve`` console script: ``as-deploy serve`` with the same options."""
    args = list(sys.argv[1:] if argv is None else argv)
    main(["serve", *args], prog_name="as-deploy")
