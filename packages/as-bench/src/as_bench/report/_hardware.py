"""Reading the hardware record stored in a result, tolerantly.

``BenchmarkResult.hardware`` is a plain mapping (``HardwareInfo.model_dump``) so that old
results stay readable when the probe grows; a report must cope with records from other
as-bench versions, partial ones, and hostile ones. Each part is validated on its own, so
a broken ``cpu`` entry does not hide a good ``apple_silicon`` one.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from as_bench.probe import AppleSiliconInfo, HardwareInfo
from as_bench.results import BenchmarkResult

__all__ = [
    "MISSING",
    "apple_silicon_of",
    "cpu_model_of",
    "hardware_of",
    "lookup",
    "machine_label",
]

log = logging.getLogger(__name__)

MISSING = "not available on the machine that produced these results"
"""What the report says where a fact was not recorded, instead of guessing."""


def hardware_of(result: BenchmarkResult) -> HardwareInfo | None:
    """The whole record as a :class:`HardwareInfo`, or ``None`` when it does not validate."""
    try:
        return HardwareInfo.model_validate(result.hardware)
    except ValidationError as exc:
        log.debug("hardware record of %s is not a HardwareInfo: %s", result.benchmark, exc)
        return None


def apple_silicon_of(result: BenchmarkResult) -> AppleSiliconInfo | None:
    """The Apple Silicon part of the record, or ``None`` (not a Mac, or unreadable)."""
    apple = result.hardware.get("apple_silicon")
    if not isinstance(apple, dict):
        return None
    try:
        return AppleSiliconInfo.model_validate(apple)
    except ValidationError as exc:
        log.debug("apple_silicon of %s does not validate: %s", result.benchmark, exc)
        return None


def lookup(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or ``None`` where a key is missing or a level is no dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def cpu_model_of(result: BenchmarkResult) -> str | None:
    """The CPU's brand string, e.g. ``"AMD EPYC 7R13 Processor"``; ``None`` if unknown."""
    model = lookup(result.hardware, "cpu", "model")
    return str(model) if model else None


def machine_label(result: BenchmarkResult) -> str:
    """A short name of the machine: the Apple chip and Mac, or the CPU and OS."""
    apple = apple_silicon_of(result)
    if apple is not None:
        where = " ".join(p for p in (apple.model_name, apple.model_identifier) if p)
        return f"{apple.chip} ({where})" if where else apple.chip
    cpu = cpu_model_of(result) or "unknown CPU"
    system = lookup(result.hardware, "os", "name") or lookup(result.hardware, "os", "system")
    if isinstance(system, str) and system:
        return f"{cpu} ({system})"
    return cpu
