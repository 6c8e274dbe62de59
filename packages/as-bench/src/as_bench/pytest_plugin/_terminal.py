"""The plugin's terminal summary lines: a line with its markup, and plain-text tables.

Shared by the session (its results table) and the gate (the comparison table), so that
neither imports the other for them.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Line", "format_table"]

Line = tuple[str, dict[str, bool]]
"""A line of the terminal summary and its markup (``{"red": True}``)."""


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
