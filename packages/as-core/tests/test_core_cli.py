"""The shared command-line plumbing: exit codes, one error message with a hint, --debug."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer

from as_core.cli import DEFAULT_HINT, CommandLine, version_callback
from as_core.exceptions import MissingExtraError


class ToolError(Exception):
    """The package's error base in this test."""


class BadInput(ToolError):
    hint = "spell it right"


class ToolMissing(MissingExtraError):
    package = "tool"


def make_cli() -> CommandLine:
    app = typer.Typer(name="tool", no_args_is_help=True, pretty_exceptions_enable=False)
    cli = CommandLine(app, "tool", package_error=ToolError, usage_errors=(BadInput,))

    @app.callback()
    def root(
        debug: Annotated[bool, typer.Option("--debug")] = False,
        version: Annotated[
            bool, typer.Option("--version", callback=version_callback("tool", "1.2.3"))
        ] = False,
    ) -> None:
        cli.debug = debug

    @app.command()
    def ok() -> None:
        cli.stdout.print("fine")

    @app.command()
    def usage() -> None:
        raise BadInput("no such model 'x'")

    @app.command()
    def fails() -> None:
        raise ToolError("the disk is full")

    @app.command()
    def crashes() -> None:
        raise KeyError("boom")

    @app.command()
    def missing() -> None:
        raise ToolMissing("fastlib", "fast")

    @app.command()
    def many() -> None:
        raise ToolError("3 problems:\n  a\n  b")

    return cli


def run(cli: CommandLine, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.run(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_success_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make_cli(), capsys, "ok")[:2] == (0, "fine\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make_cli(), capsys, "--version")[:2] == (0, "tool 1.2.3\n")


def test_a_usage_error_exits_2_with_its_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(make_cli(), capsys, "usage")
    assert code == 2
    assert err == "error: no such model 'x' (hint: spell it right)\n"


def test_an_unknown_option_is_click_usage_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(make_cli(), capsys, "ok", "--nope")
    assert code == 2
    assert "No such option" in err


def test_a_package_error_exits_1_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(make_cli(), capsys, "fails")
    assert code == 1
    assert err == f"error: the disk is full (hint: {DEFAULT_HINT})\n"


def test_an_unexpected_error_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(make_cli(), capsys, "crashes")
    assert code == 1
    assert err.startswith("error: unexpected KeyError: 'boom'")
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(make_cli(), capsys, "--debug", "crashes")
    assert code == 1
    assert "Traceback" in err
    assert "boom" in err


def test_debug_is_reset_between_runs(capsys: pytest.CaptureFixture[str]) -> None:
    cli = make_cli()
    run(cli, capsys, "--debug", "crashes")
    _, _, err = run(cli, capsys, "crashes")
    assert "Traceback" not in err


def test_a_multi_line_cause_puts_the_hint_on_its_own_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, err = run(make_cli(), capsys, "many")
    assert err == f"error: 3 problems:\n  a\n  b\nhint: {DEFAULT_HINT}\n"


def test_registered_hints_apply_by_type() -> None:
    cli = make_cli()
    cli.hints[KeyError] = "check the key"
    assert cli.hint(KeyError("k")) == "check the key"
    assert cli.hint(BadInput("x")) == "spell it right"
    assert cli.hint(ValueError()) == DEFAULT_HINT


def test_a_message_that_carries_its_hint_is_not_repeated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(make_cli(), capsys, "missing")
    assert code == 1
    assert err.count('uv add "tool[fast]"') == 1
    assert err.startswith("error: 'fastlib' is not installed")


def test_root_options_give_version_debug_and_the_start_hook(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = typer.Typer(name="tool2", no_args_is_help=True, pretty_exceptions_enable=False)
    cli = CommandLine(app, "tool2")
    started: list[bool] = []
    cli.add_root_options("9.9", help="The tool.", on_start=started.append)

    @app.command()
    def crash() -> None:
        raise KeyError("k")

    assert run(cli, capsys, "--version")[:2] == (0, "tool2 9.9\n")
    code, _, err = run(cli, capsys, "--debug", "crash")
    assert (code, started) == (1, [True])
    assert "Traceback" in err
    code, out, _ = run(cli, capsys, "--help")
    assert code == 0
    assert "The tool." in out
    assert "--debug" in out


def test_root_options_without_debug(capsys: pytest.CaptureFixture[str]) -> None:
    app = typer.Typer(name="tool3", no_args_is_help=True, pretty_exceptions_enable=False)
    cli = CommandLine(app, "tool3")
    cli.add_root_options("1.0", help="Three.", debug_option=False)

    @app.command()
    def ok() -> None:
        cli.stdout.print("fine")

    assert run(cli, capsys, "ok")[:2] == (0, "fine\n")
    code, _, err = run(cli, capsys, "--debug", "ok")
    assert code == 2
    assert "No such option" in err
