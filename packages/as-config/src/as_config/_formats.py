"""The three file formats: which suffix means which, and text to data and back."""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import tomli_w

from as_config._json import parse_json
from as_config._limits import check_depth, long_integer_at, too_deep, too_long_integer
from as_config._parsed import ParsedDocument, dotted
from as_config._yaml import dump_yaml, parse_yaml
from as_config.exceptions import (
    AsConfigError,
    ConfigDumpError,
    ConfigParseError,
    DuplicateKeyError,
    UnsupportedFormatError,
)

ConfigFormat = Literal["yaml", "json", "toml"]
"""A format as-config reads and writes."""

FORMATS: tuple[ConfigFormat, ...] = get_args(ConfigFormat)

SUFFIXES: dict[str, ConfigFormat] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".toml": "toml",
}
"""Supported file suffixes (matched case-insensitively) and their formats."""

_NAMES: dict[str, ConfigFormat] = {"yaml": "yaml", "yml": "yaml", "json": "json", "toml": "toml"}

# tomllib words its position as a suffix of the message (Python 3.14 also sets attributes).
_TOML_POSITION = re.compile(
    r"^(?P<reason>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)
# tomllib messages that mean "this key is already defined".
_TOML_DUPLICATE = ("Cannot overwrite a value", "Cannot declare", "Duplicate inline table key")
_TOML_KEY_LINE = re.compile(r"^\s*(?:\[\[?\s*(?P<table>[^\]]+?)\s*\]\]?|(?P<key>[^=#\[]+?)\s*=)")


def format_for_path(path: Path) -> ConfigFormat:
    """Return the format a path's suffix names.

    Raises:
        UnsupportedFormatError: The suffix is not .yaml, .yml, .json or .toml.
    """
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise UnsupportedFormatError(path.suffix, tuple(SUFFIXES), path=path) from None


def format_for_name(name: str) -> ConfigFormat:
    """Return the format for a name such as ``"yaml"``, ``"YML"`` or ``".toml"``.

    Raises:
        UnsupportedFormatError: The name is not one of yaml, yml, json, toml.
    """
    try:
        return _NAMES[name.lower().lstrip(".")]
    except KeyError:
        raise UnsupportedFormatError(name, FORMATS) from None


def _toml_end(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _toml_duplicate_key(text: str, line: int) -> str | None:
    """Best effort: read the key or table named on ``line`` of the TOML text."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    match = _TOML_KEY_LINE.match(lines[line - 1])
    if match is None:
        return None
    return (match.group("table") or match.group("key") or "").strip() or None


def parse_toml(text: str, path: Path | None) -> ParsedDocument:
    """Parse a TOML document.

    TOML cannot tell us where keys are, so validation errors for TOML files name the file
    but not the line.

    Raises:
        DuplicateKeyError: A key or table is defined twice.
        ConfigParseError: The text is not valid TOML.
    """
    try:
        return ParsedDocument(tomllib.loads(text), start=(1, 1))
    except RecursionError:
        raise ConfigParseError(path, too_deep("TOML")) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc).splitlines()[0]
        line: int | None = getattr(exc, "lineno", None)
        column: int | None = getattr(exc, "colno", None)
        match = _TOML_POSITION.match(message)
        if match is not None:
            message = match.group("reason")
            if line is None and match.group("line"):
                line, column = int(match.group("line")), int(match.group("col"))
            elif line is None:
                line, column = _toml_end(text)
        if message.startswith(_TOML_DUPLICATE):
            key = _toml_duplicate_key(text, line) if line is not None else None
            raise DuplicateKeyError(path, key, line=line, column=column) from exc
        raise ConfigParseError(path, f"invalid TOML: {message}", line=line, column=column) from exc
    except ValueError:
        # Not a TOMLDecodeError: int() refused an integer longer than Python reads.
        found = long_integer_at(text)
        if found is None:
            raise
        (line, column), digits = found
        raise ConfigParseError(
            path, f"invalid TOML: {too_long_integer(digits)}", line=line, column=column
        ) from None


_NAMES_FOR_PEOPLE: dict[ConfigFormat, str] = {"yaml": "YAML", "json": "JSON", "toml": "TOML"}


def _parse(text: str, fmt: ConfigFormat, path: Path | None) -> ParsedDocument:
    if fmt == "yaml":
        return parse_yaml(text, path)
    if fmt == "json":
        return parse_json(text, path)
    return parse_toml(text, path)


def parse_text(text: str, fmt: ConfigFormat, path: Path | None = None) -> ParsedDocument:
    """Parse ``text`` in format ``fmt``; ``path`` only names the file in errors.

    Raises:
        DuplicateKeyError: A mapping repeats a key.
        ConfigParseError: The text is not valid, or passes a limit of
            :mod:`as_config._limits` (nesting, integer length, YAML alias expansion).
    """
    name = _NAMES_FOR_PEOPLE[fmt]
    try:
        parsed = _parse(text, fmt, path)
    except AsConfigError:
        raise
    except RecursionError:
        # The parsers refuse what nests too deeply first; this is the last guard.
        raise ConfigParseError(path, too_deep(name)) from None
    except ValueError as exc:
        raise ConfigParseError(path, f"invalid {name}: {exc}") from None
    check_depth(parsed.data, path, name, parsed.positions)
    return parsed


def _toml_ready(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Drop None-valued keys (TOML has no null); refuse None inside a list."""
    if isinstance(value, Mapping):
        return {k: _toml_ready(v, (*path, str(k))) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if item is None:
                raise ConfigDumpError(
                    "toml",
                    "TOML has no null, and a list cannot skip an item",
                    dotted((*path, index)),
                )
        return [_toml_ready(item, (*path, index)) for index, item in enumerate(value)]
    return value


def _check_finite(value: Any, path: tuple[str | int, ...] = ()) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigDumpError("json", f"JSON cannot hold {value}", dotted(path))
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, (*path, str(k)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, (*path, index))


def render(data: Mapping[str, Any], fmt: ConfigFormat) -> str:
    """Write JSON-compatible ``data`` as text in format ``fmt``, ending with a newline.

    TOML has no null, so keys whose value is None are left out: reading the file back
    gives those fields their defaults.

    Raises:
        ConfigDumpError: The data holds a value the format cannot write.
    """
    if fmt == "yaml":
        return dump_yaml(data)
    if fmt == "json":
        _check_finite(data)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    ready = _toml_ready(data)
    try:
        return tomli_w.dumps(ready)
    except (TypeError, ValueError) as exc:
        raise ConfigDumpError("toml", str(exc)) from exc
