"""Human-readable figures for tables, logs and reports."""

from __future__ import annotations

import math

__all__ = ["format_bytes", "format_rate", "format_seconds"]


def format_seconds(seconds: float | None, missing: str = "-") -> str:
    """``0.0000123`` as ``"12.3 µs"``: three significant figures, the unit chosen by size.

    ``None``, NaN and infinities are ``missing``.
    """
    if seconds is None or not math.isfinite(seconds):
        return missing
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(per_second: float | None, missing: str = "-") -> str:
    """Items per second with a thousands separator (``"12,345/s"``)."""
    if per_second is None or not math.isfinite(per_second):
        return missing
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.3g}/s"


def format_bytes(count: int | None, missing: str = "-") -> str:
    """``17179869184`` as ``"16.0 GiB"``; ``None`` as ``missing``."""
    if count is None:
        return missing
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
