"""The ``as-config`` command line: validate a config file, show resolved settings.

Exit codes: 0 success; 1 the config is invalid (parse or validation failure) or an
unexpected error; 2 a usage error (a missing option, a ``--schema`` that does not import,
a file that does not exist or has an unsupported suffix, an unknown profile). Errors are
one block on stderr with a hint; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from as_config._dump import dump_settings
from as_config._formats import format_for_path
from as_config._layers import deep_merge, file_layers, merge_layers
from as_config._loader import load_settings
from as_config._settings import AsSettings
from as_config._version import __version__
from as_config.exceptions import (
    AsConfigError,
    ConfigFileNotFoundError,
    ConfigFileReadError,
    ProfileNotFoundError,
    UnsupportedFormatError,
)
from as_core.cli import CommandLine

app = typer.Typer(
    name="as-config",
    help="Validate as-toolkit config files and show the settings they resolve to.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks only with --debug; the commands print their own errors.
    pretty_exceptions_enable=False,
)

# Errors in what the person typed, rather than in the config file's contents.
_USAGE_ERRORS = (
    ConfigFileNotFoundError,
    ConfigFileReadError,
    UnsupportedFormatError,
    ProfileNotFoundError,
)


class SchemaError(Exception):
    """``--schema`` does not name an importable `AsSettings` subclass (a usage error)."""

    hint = "pass --schema package.module:ClassName for a subclass of as_config.AsSettings"


_cli = CommandLine(
    app,
    "as-config",
    package_error=AsConfigError,
    usage_errors=(SchemaError, *_USAGE_ERRORS),
)


class OutputFormat(StrEnum):
    """Formats ``show`` writes."""

    yaml = "yaml"
    json = "json"
    toml = "toml"


def load_schema(spec: str) -> type[AsSettings]:
    """Import the settings class named ``package.module:ClassName``.

    The working directory is put on ``sys.path`` first (as ``python -m`` would), so a
    module next to the config file imports without installing it.

    Raises:
        SchemaError: The spec is malformed, does not import, or is not an `AsSettings`.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SchemaError(f"--schema must look like 'package.module:ClassName', got {spec!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchemaError(f"--schema {spec}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SchemaError(f"--schema {spec}: {module_name} has no {attr!r}") from None
    if not (isinstance(target, type) and issubclass(target, AsSettings)):
        raise SchemaError(f"--schema {spec}: {attr} is not a subclass of as_config.AsSettings")
    return target


def environment_mapping(prefix: str, delimiter: str = "__") -> dict[str, Any]:
    """Variables starting with ``prefix`` as a nested mapping of lower-case keys (strings)."""
    data: dict[str, Any] = {}
    for name in sorted(os.environ):
        if not name.upper().startswith(prefix.upper()) or len(name) == len(prefix):
            continue
        parts = name[len(prefix) :].lower().split(delimiter)
        if not all(parts):
            continue
        nested: dict[str, Any] = {}
        current = nested
        for part in parts[:-1]:
            current = current.setdefault(part, {})
        current[parts[-1]] = os.environ[name]
        data = deep_merge(data, nested)
    return data


# --debug belongs to each command here (after the command's name).
_cli.add_root_options(
    __version__,
    help="Validate as-toolkit config files and show the settings they resolve to.",
    debug_option=False,
)


FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE", help="Config file: .yaml, .yml, .json or .toml.", show_default=False
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Profile to lay over the file.")
]
EnvPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--env-prefix", help="Environment prefix, e.g. AS_BENCH__ (default: the schema's own)."
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]


@app.command()
def validate(
    file: FileArg,
    schema: Annotated[
        str, typer.Option("--schema", "-s", help="Settings class, as package.module:ClassName.")
    ],
    profile: ProfileOpt = None,
    env_prefix: EnvPrefixOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check FILE (with its profile and the environment) against a settings class."""
    _cli.debug = debug
    model = load_schema(schema)
    load_settings(model, file, profile=profile, env_prefix=env_prefix)
    suffix = f" with profile {profile!r}" if profile else ""
    _cli.stdout.print(f"[green]valid:[/] {escape(str(file))}{escape(suffix)} for {model.__name__}")


@app.command()
def show(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE", help="Config file; may be left out with --schema.", show_default=False
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option("--schema", "-s", help="Settings class, as package.module:ClassName."),
    ] = None,
    profile: ProfileOpt = None,
    env_prefix: EnvPrefixOpt = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", help="Output format (default: the file's format)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the resolved settings: file, profile and environment merged.

    With --schema, the settings are validated, defaults filled in and secrets masked.
    Without it, the merged mapping is printed as written, with variables starting with
    --env-prefix laid on top as strings.
    """
    _cli.debug = debug
    if file is None and schema is None:
        raise SchemaError("show needs a FILE, a --schema, or both")
    data: Any
    if schema is not None:
        model = load_schema(schema)
        data = load_settings(model, file, profile=profile, env_prefix=env_prefix)
    else:
        data = merge_layers(file_layers(file, profile))
        if env_prefix:
            data = deep_merge(data, environment_mapping(env_prefix))
    if fmt is not None:
        chosen = fmt.value
    else:
        chosen = format_for_path(file) if file is not None else "yaml"
    text = dump_settings(data, chosen)
    # typer.echo, not rich: config text may hold [brackets] that rich would read as markup.
    typer.echo(text, nl=False)


def main(argv: list[str] | None = None) -> None:
    """Run the ``as-config`` command line (also ``python -m as_config``).

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.
    """
    _cli.run(argv)
