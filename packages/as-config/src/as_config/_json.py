"""JSON parsing that rejects duplicate keys and records where keys are.

The standard library keeps the last of two equal keys without a word. A pairs hook
catches the repeat; because the hook is not told where it is, a small scanner then walks
the text to find the key's line and column, and, for valid files, where every key sits so
validation errors can point at a line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from as_config._limits import json_too_deep_at, too_deep, too_long_integer
from as_config._parsed import KeyPath, ParsedDocument, Position, offset_to_position
from as_config.exceptions import ConfigParseError, DuplicateKeyError

_WHITESPACE = " \t\r\n"


class _DuplicateKey(Exception):
    """Raised by the pairs hook; the scanner then finds the key's position."""


class _LongInteger(Exception):
    """Raised by the integer hook; the text is then searched for the literal."""


def _parse_int(literal: str) -> int:
    try:
        return int(literal)
    except ValueError:
        raise _LongInteger(literal) from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


@dataclass
class _Frame:
    """One open object or array while scanning."""

    path: KeyPath
    is_object: bool
    keys: dict[str, int] = field(default_factory=dict)
    key: str = ""
    index: int = 0
    expect_item: bool = True


@dataclass
class _Scan:
    positions: dict[KeyPath, int] = field(default_factory=dict)
    duplicate: tuple[str, int, int] | None = None  # key, offset, offset of the first


def _child_path(stack: list[_Frame]) -> KeyPath:
    if not stack:
        return ()
    top = stack[-1]
    return (*top.path, top.key if top.is_object else top.index)


def _scan_string(text: str, offset: int, stack: list[_Frame], scan: _Scan) -> int:
    """Read the string at ``offset``; if it is an object key, record it. Return its end."""
    end = offset + 1
    while end < len(text) and text[end] != '"':
        # A backslash escapes the next character, which may be a quote.
        end += 2 if text[end] == "\\" else 1
    end += 1
    try:
        value = str(json.loads(text[offset:end]))
    except ValueError:
        # Only reached past a syntax error, where positions no longer matter.
        value = text[offset + 1 : end - 1]
    after = end
    while after < len(text) and text[after] in _WHITESPACE:
        after += 1
    top = stack[-1] if stack else None
    if top is not None and top.is_object and after < len(text) and text[after] == ":":
        if value in top.keys:
            scan.duplicate = (value, offset, top.keys[value])
        top.keys[value] = offset
        top.key = value
        scan.positions[(*top.path, value)] = offset
    return end


def _scan(text: str) -> _Scan:
    """Walk JSON text (already known to parse) and note where keys and items start."""
    scan = _Scan()
    stack: list[_Frame] = []
    offset = 0
    while offset < len(text) and scan.duplicate is None:
        char = text[offset]
        if char in _WHITESPACE:
            offset += 1
            continue
        top = stack[-1] if stack else None
        if top is not None and not top.is_object and top.expect_item and char not in ",]":
            scan.positions[(*top.path, top.index)] = offset
            top.expect_item = False
        if char == '"':
            offset = _scan_string(text, offset, stack, scan)
            continue
        if char in "{[":
            stack.append(_Frame(_child_path(stack), is_object=char == "{"))
        elif char in "}]" and stack:
            stack.pop()
        elif char == "," and top is not None and not top.is_object:
            top.index += 1
            top.expect_item = True
        offset += 1
    return scan


def parse_json(text: str, path: Path | None) -> ParsedDocument:
    """Parse a JSON document; whitespace only counts as empty.

    Args:
        text: The document.
        path: The file it came from, for error messages.

    Returns:
        The data (None for an empty document) and key positions.

    Raises:
        DuplicateKeyError: An object repeats a key.
        ConfigParseError: The text is not valid JSON, nests deeper than ``MAX_DEPTH``
            or holds an integer longer than Python reads.
    """
    if not text.strip():
        return ParsedDocument(None)
    deep = json_too_deep_at(text)
    if deep is not None:
        raise ConfigParseError(path, too_deep("JSON"), line=deep[0], column=deep[1])
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates, parse_int=_parse_int)
    except _LongInteger as long:
        literal = str(long)
        found = text.find(literal)
        line, column = offset_to_position(text, found) if found >= 0 else (None, None)
        digits = sum(char.isdigit() for char in literal)
        raise ConfigParseError(
            path, f"invalid JSON: {too_long_integer(digits)}", line=line, column=column
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigParseError(
            path, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from exc
    except _DuplicateKey as dup:
        scan = _scan(text)
        if scan.duplicate is None:  # pragma: no cover - the scanner sees what the hook saw
            raise DuplicateKeyError(path, str(dup)) from None
        key, offset, first = scan.duplicate
        line, column = offset_to_position(text, offset)
        first_line = offset_to_position(text, first)[0]
        raise DuplicateKeyError(
            path, key, line=line, column=column, first_line=first_line
        ) from None
    scan = _scan(text)
    positions: dict[KeyPath, Position] = {
        key: offset_to_position(text, offset) for key, offset in scan.positions.items()
    }
    start = len(text) - len(text.lstrip(_WHITESPACE))
    return ParsedDocument(data, positions, offset_to_position(text, start))
