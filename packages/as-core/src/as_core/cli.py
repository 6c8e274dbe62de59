"""The plumbing every as-toolkit command line shares: errors, exit codes, ``--version``.

Commands raise; :meth:`CommandLine.run` turns what they raise into one message on stderr
and the documented exit code, so a new command is only a function under
``@app.command()``:

- 0: success;
- 1: a failure (an error of the package, or an unexpected one, which is named as such);
- 2: a usage error (an unknown option or command, a bad value, or one of the package's
  errors that mean "what you typed is wrong").

A message is ``error: <cause> (hint: <what to do>)``; a cause of several lines puts the
hint on a line of its own. The hint is the exception's ``hint`` attribute when it has
one. The traceback is shown only with ``--debug`` (:attr:`CommandLine.debug`).

Example::

    app = typer.Typer(name="as-bench", no_args_is_help=True, pretty_exceptions_enable=False)
    cli = CommandLine(app, "as-bench", package_error=AsBenchError, usage_errors=(SuiteError,))

    def main(argv: list[str] | None = None) -> None:
        cli.run(argv)
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.traceback import Traceback

from as_core.exceptions import AsCoreError

__all__ = ["DEFAULT_HINT", "CommandLine", "console", "version_callback"]

#: The hint for an error that carries none of its own.
DEFAULT_HINT = "run again with --debug for the traceback"


def console(*, stderr: bool = False) -> Console:
    """A rich console for a command line: never re-wraps a path, a version or a name."""
    return Console(stderr=stderr, soft_wrap=True, highlight=False, emoji=False)


def version_callback(prog_name: str, version: str) -> Callable[[bool], None]:
    """The callback of an eager ``--version`` option: prints ``<prog> <version>``, exits 0."""

    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog_name} {version}")
            raise typer.Exit()

    return show


@dataclass
class CommandLine:
    """Runs a typer app with the shared error handling and exit codes.

    Attributes:
        app: The typer application (created with ``pretty_exceptions_enable=False``).
        prog_name: The program name in usage and help messages.
        package_error: The package's error base: its errors (and as-core's) print
            without the ``unexpected <Type>:`` prefix that other exceptions get.
        usage_errors: The package's errors that mean the input was wrong (exit 2).
        hints: Fallback hints for error types without a ``hint`` attribute.
        debug: Whether tracebacks are shown; the app's ``--debug`` option sets it, and
            :meth:`run` resets it first.
        stdout: Where commands print their output.
        stderr: Where errors go.
    """

    app: typer.Typer
    prog_name: str
    package_error: type[BaseException] = Exception
    usage_errors: tuple[type[BaseException], ...] = ()
    hints: dict[type[BaseException], str] = field(default_factory=dict)
    debug: bool = False
    stdout: Console = field(default_factory=console)
    stderr: Console = field(default_factory=lambda: console(stderr=True))

    def add_root_options(
        self,
        version: str,
        *,
        help: str,
        debug_option: bool = True,
        on_start: Callable[[bool], None] | None = None,
    ) -> None:
        """Give the app its global options: ``--version`` and (by default) ``--debug``.

        Args:
            version: What ``--version`` prints after the program name.
            help: The app's help text.
            debug_option: Whether to add ``--debug`` (tracebacks); a command line whose
                commands take ``--debug`` themselves sets :attr:`debug` in each command.
            on_start: Called with the debug flag before any command runs: where an
                application sets up logging.
        """
        show_version = typer.Option(
            "--version",
            callback=version_callback(self.prog_name, version),
            is_eager=True,
            help="Show the version.",
        )
        if debug_option:

            def root(
                debug: Annotated[
                    bool, typer.Option("--debug", help="Show tracebacks and debug logging.")
                ] = False,
                version: Annotated[bool, show_version] = False,
            ) -> None:
                self.debug = debug
                if on_start is not None:
                    on_start(debug)

        else:

            def root(  # type: ignore[misc]  # the other branch without --debug
                version: Annotated[bool, show_version] = False,
            ) -> None:
                if on_start is not None:
                    on_start(False)

        root.__doc__ = help
        self.app.callback()(root)

    def hint(self, exc: BaseException) -> str:
        """The hint shown with ``exc``: its ``hint`` attribute, a registered one, or the default."""
        hint = getattr(exc, "hint", None)
        if isinstance(hint, str) and hint:
            return hint
        for kind, text in self.hints.items():
            if isinstance(exc, kind):
                return text
        return DEFAULT_HINT

    def fail(self, exc: BaseException, code: int) -> NoReturn:
        """Print ``exc`` as one error message (with the traceback under ``--debug``) and exit."""
        if self.debug:
            self.stderr.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
        own = isinstance(exc, (self.package_error, AsCoreError, *self.usage_errors))
        cause = str(exc) if own else f"unexpected {type(exc).__name__}: {exc}"
        hint = escape(self.hint(exc))
        if self.hint(exc) in cause:
            # The message already carries its fix (a missing extra's install command).
            self.stderr.print(f"[bold red]error:[/] {escape(cause)}")
        elif "\n" in cause.strip():
            self.stderr.print(f"[bold red]error:[/] {escape(cause)}")
            self.stderr.print(f"[dim]hint:[/] {hint}")
        else:
            self.stderr.print(f"[bold red]error:[/] {escape(cause)} [dim](hint: {hint})[/]")
        sys.exit(code)

    def run(self, argv: list[str] | None = None) -> NoReturn:
        """Run the app on ``argv`` (``sys.argv[1:]`` when ``None``) and exit with its code."""
        self.debug = False
        try:
            # standalone_mode=False: errors come back here instead of click printing them,
            # so that they all get the same form and exit codes.
            result = self.app(args=argv, prog_name=self.prog_name, standalone_mode=False)
        except typer.Abort:
            self.stderr.print("[bold red]aborted[/]")
            sys.exit(1)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except typer.TyperException as exc:
            # Usage errors (exit 2) and other click errors: click's own message names the
            # problem and points at --help.
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                self.stderr.print(f"[bold red]error:[/] {escape(exc.format_message())}")
            sys.exit(exc.exit_code)
        except self.usage_errors as exc:
            self.fail(exc, 2)
        except Exception as exc:
            self.fail(exc, 1)
        sys.exit(result if isinstance(result, int) else 0)
