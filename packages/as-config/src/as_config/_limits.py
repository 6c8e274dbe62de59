"""Limits on what one config file may hold, so that a hostile or broken file fails cleanly.

A config file is small and shallow. Past these limits the parsers and the merge would run
out of recursion (a ``RecursionError`` naming no file), of digits (Python refuses to
read integers longer than ``sys.get_int_max_str_digits()``) or of memory (YAML aliases
that refer to aliases grow exponentially: the "billion laughs"). Each is refused with a
`ConfigParseError` that names the file and, where the format tells us, the line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from as_config._parsed import KeyPath, Position, dotted, offset_to_position
from as_config.exceptions import ConfigParseError

MAX_DEPTH = 64
"""Most mappings and lists nested in one another (the top-level mapping is the first)."""

MAX_VALUES = 100_000
"""Most values (mappings, lists and scalars) a YAML file may stand for once its aliases
are expanded; a file that is not made of aliases holds fewer than it has lines."""

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def too_deep(fmt: str, how: str = "") -> str:
    """The reason given for a file whose values nest deeper than `MAX_DEPTH`."""
    return (
        f"invalid {fmt}: values nest deeper than {MAX_DEPTH} levels{how}, more than a "
        "config file may"
    )


def too_long_integer(digits: int) -> str:
    """The reason given for an integer longer than Python reads."""
    limit = sys.get_int_max_str_digits()
    return (
        f"an integer of {digits} digits is longer than the {limit} digits Python reads; "
        "quote it if it is text"
    )


def long_integer_at(text: str) -> tuple[Position, int] | None:
    """Where the first integer longer than Python reads starts in ``text``, and its digits."""
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        return None
    match = re.search(rf"[0-9][0-9_]{{{limit},}}", text)
    if match is None:
        return None
    digits = sum(char.isdigit() for char in match.group())
    return offset_to_position(text, match.start()), digits


def json_too_deep_at(text: str) -> Position | None:
    """Where JSON ``text`` first opens its ``MAX_DEPTH + 1``-th nested array or object."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    level = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            level += 1
            if level > MAX_DEPTH:
                return offset_to_position(text, match.start())
        elif token in "]}":
            level -= 1
    return None


def check_depth(
    data: Any, path: Path | None, fmt: str, positions: Mapping[KeyPath, Position]
) -> None:
    """Refuse parsed ``data`` whose mappings and lists nest deeper than `MAX_DEPTH`.

    TOML's dotted keys (``a.b.c = 1``) nest without brackets, so this runs on the data of
    every format. The error points at the key where the limit is passed, when known.

    Raises:
        ConfigParseError: The data nests too deeply.
    """
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        value, key = stack.pop()
        if isinstance(value, Mapping):
            children: list[tuple[Any, KeyPath]] = [
                (item, (*key, str(name))) for name, item in value.items()
            ]
        elif isinstance(value, list):
            children = [(item, (*key, index)) for index, item in enumerate(value)]
        else:
            continue
        if len(key) >= MAX_DEPTH:
            found = next(
                (positions[key[:end]] for end in range(len(key), 0, -1) if key[:end] in positions),
                None,
            )
            line, column = found or (None, None)
            raise ConfigParseError(
                path, f"{too_deep(fmt)} (at {dotted(key)})", line=line, column=column
            )
        stack.extend(children)
