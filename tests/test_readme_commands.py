"""Every command line the READMEs show is one the command lines accept.

The READMEs are where a user copies commands from. Each ``as-bench``, ``as-deploy``,
``as-config`` and ``serve`` line in their shell blocks is parsed here by the real command
tree (options, values, arguments and subcommands checked by the parser, nothing run), so a
renamed option or command fails this test instead of the user. The commands that do real
work are run for real by each package's CLI tests and by the example tests.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted(
    p for p in ROOT.glob("**/README.md") if not {".venv", "node_modules"} & set(p.parts)
)
CLIS = {"as-bench", "as-deploy", "as-config", "serve"}
# `[--baseline DIR]` in a README marks an optional part; `...` an elided rest.
_OPTIONAL = re.compile(r"\[[^\]]*\]")


def _shell_blocks(text: str) -> Iterator[str]:
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, re.S):
        yield block.replace("\\\n", " ")


def _command(line: str) -> list[str] | None:
    """The CLI's argument vector (program first) of one README line, or None."""
    line = line.strip().removeprefix("$ ")
    line = line.split(" #", 1)[0]
    line = _OPTIONAL.sub("", line)
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if words and words[-1] == "&":
        words = words[:-1]  # run in the background: the command is what comes before
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # environment assignments
    if words[:2] == ["uv", "run"]:
        words = words[2:]
        while words and words[0].startswith("--"):
            words = words[2:] if words[0] in {"--package", "--group"} else words[1:]
    if not words or words[0] not in CLIS:
        return None
    return words


def readme_commands() -> list[tuple[str, list[str]]]:
    found = []
    for readme in READMES:
        for block in _shell_blocks(readme.read_text(encoding="utf-8")):
            for line in block.splitlines():
                words = _command(line)
                if words is not None:
                    found.append((f"{readme.relative_to(ROOT)}: {' '.join(words)}", words))
    return found


COMMANDS = readme_commands()


def _root_command(program: str) -> Any:
    if program == "as-bench":
        from as_bench.cli import app
    elif program in {"as-deploy", "serve"}:
        from as_deploy.cli import app
    else:
        from as_config.cli import app
    return typer.main.get_command(app)


def _parse(program: str, args: list[str]) -> None:
    """Parse ``args`` down the command tree as a run would, invoking nothing."""
    command = _root_command(program)
    if program == "serve":  # the serve script is `as-deploy serve`
        args = ["serve", *args]
    context = command.make_context(program, list(args))
    while hasattr(command, "resolve_command"):  # a group: go down to the subcommand
        # click keeps the subcommand's name apart from its arguments ("protected").
        protected = getattr(context, "_protected_args", None)
        if protected is None:
            protected = getattr(context, "protected_args", [])
        rest = [*protected, *context.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(context, rest)
        assert sub is not None and name is not None, f"{program}: no command in {args}"
        context = sub.make_context(name, rest, parent=context)
        command = sub


def test_the_readmes_show_commands_of_every_cli() -> None:
    assert {words[0] for _, words in COMMANDS} >= {"as-bench", "as-deploy", "as-config"}


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_readme_command_parses(
    where: str, words: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paths the command names exist, as they would where a user runs it.
    monkeypatch.chdir(tmp_path)
    for word in words[1:]:
        if word.startswith("-") or ("/" not in word and "." not in word):
            continue
        if ":" in word or "," in word:
            continue  # pkg.module:factory specs, label lists
        path = tmp_path / word
        if word.endswith("/") or not path.suffix:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    try:
        _parse(words[0], words[1:])
    except typer.Exit as done:  # --version, --help
        assert done.exit_code == 0, where
    except typer.TyperException as exc:  # click's usage errors, as typer ships them
        pytest.fail(f"{where}: {exc}")


@pytest.mark.slow
def test_the_pytest_plugin_options_the_readmes_show_exist() -> None:
    shown = {
        option
        for readme in READMES
        for option in re.findall(r"--as-bench-[a-z-]+", readme.read_text(encoding="utf-8"))
    }
    assert shown, "the as-bench README documents its pytest options"
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert {option for option in shown if option not in help_text} == set()
