"""Turning arbitrary values into JSON that always encodes, as one valid UTF-8 line."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import PurePath
from typing import TypeAlias

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

# Deeper structures are cut off: logging must never die of a RecursionError.
_MAX_DEPTH = 32

# json.dumps(ensure_ascii=False) leaves these raw; str.splitlines() (and some JSON-lines
# readers) break lines on them, so they are escaped to keep one record per line.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def safe_repr(value: object) -> str:
    """Return ``repr(value)``, or a short text naming the type when repr itself fails."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__} object>"


def to_jsonable(value: object) -> JsonValue:
    """Convert ``value`` into something :func:`json.dumps` encodes without error.

    JSON types pass through (tuples become lists, dict keys that are not strings become
    their repr); non-finite floats become ``"nan"``, ``"inf"`` or ``"-inf"``; datetimes
    become ISO-8601 strings and paths their string; anything else becomes its repr.
    Cycles and structures nested deeper than 32 levels become a short marker string.
    """
    return _convert(value, 0, set())


def _convert(value: object, depth: int, active: set[int]) -> JsonValue:
    # bool before int: bool is an int subclass and must stay true/false.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, str):
        # str.__str__ gives a plain str even for a subclass that overrides __str__.
        return str.__str__(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if not isinstance(value, dict | list | tuple):
        return safe_repr(value)
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH} levels>"
    if id(value) in active:
        return f"<cycle: {type(value).__name__} contains itself>"
    active.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(key): _convert(item, depth + 1, active) for key, item in value.items()}
        return [_convert(item, depth + 1, active) for item in value]
    finally:
        active.discard(id(value))


def _int(value: int) -> JsonValue:
    # int.__int__ gives a plain int for subclasses (IntEnum, IntFlag).
    number = int.__int__(value)
    try:
        # Python refuses to print ints beyond sys.get_int_max_str_digits() digits.
        int.__repr__(number)
    except ValueError:
        return f"<int of {number.bit_length()} bits>"
    return number


def _key(key: object) -> str:
    return str.__str__(key) if isinstance(key, str) else safe_repr(key)


def dumps_line(value: JsonValue) -> str:
    r"""Encode ``value`` as one line of JSON text that is valid UTF-8 once encoded.

    The line holds no raw line break of any kind. Lone surrogates (from undecodable file
    names, ``surrogateescape`` and the like) cannot be encoded in UTF-8: a high surrogate
    followed by a low one becomes the character the pair stands for, and any other
    surrogate is written as a JSON ``\uXXXX`` escape, which Python's json reads back as
    the same surrogate.
    """
    line = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False)
    line = line.translate(_LINE_BREAKS)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # Surrogates can only occur inside JSON strings, where a \uXXXX escape is valid.
        joined = line.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        line = joined.encode("utf-8", "backslashreplace").decode("utf-8")
    return line
