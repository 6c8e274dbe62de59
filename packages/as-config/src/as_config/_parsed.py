"""The result of parsing one config file, shared by the format parsers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KeyPath = tuple[str | int, ...]
"""A key path into nested data: mapping keys are str, list indices int."""

Position = tuple[int, int]
"""A 1-based (line, column)."""


@dataclass(frozen=True)
class ParsedDocument:
    """Parsed data plus where each key sits in the text.

    Attributes:
        data: The parsed value; None for an empty document.
        positions: 1-based (line, column) of each key (and list item) by key path. Formats
            that cannot tell us (TOML) leave it empty.
        start: Where the top-level value starts, to point at a top-level list or scalar.
    """

    data: Any
    positions: dict[KeyPath, Position] = field(default_factory=dict)
    start: Position | None = None


def offset_to_position(text: str, offset: int) -> Position:
    """Turn a 0-based character offset into a 1-based (line, column)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def dotted(key: tuple[str | int, ...] | list[str | int]) -> str:
    """Format a key path for people: ``store.results_dir``, ``tags[2]``, ``stages[0].name``."""
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")
