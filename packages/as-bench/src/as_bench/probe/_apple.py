"""Apple Silicon from ``sysctl``: the chip's name, its core types, and the combined record.

Pure functions over command output, so they are tested on outputs captured from real
Macs (``tests/fixtures/macos``) on any machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from as_bench.exceptions import ProbeError
from as_bench.probe._records import (
    AppleGpuInfo,
    AppleSiliconInfo,
    MacHardwareOverview,
    PerfLevel,
    PerfLevelKind,
    ThermalInfo,
)

__all__ = [
    "ChipName",
    "apple_silicon_from",
    "core_counts",
    "parse_chip",
    "parse_sysctl",
    "parse_sysctl_values",
    "perf_levels_from_sysctl",
]

# ``key: value``; older ``sysctl -a`` printed some keys as ``key = value``.
_SYSCTL_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w.\-]*)(?::| =)(?: (?P<value>.*))?$")
_PERFLEVEL_KEY = re.compile(r"^hw\.perflevel(?P<index>\d+)\.(?P<field>\w+)$")
_CHIP = re.compile(r"\bM(?P<generation>\d+)(?:\s+(?P<variant>Pro|Max|Ultra|Extreme))?\b")

_KINDS: dict[str, PerfLevelKind] = {
    "super": "super",
    "performance": "performance",
    "efficiency": "efficiency",
    "standard": "standard",
}
_FAST_KINDS = frozenset({"super", "performance"})


def parse_sysctl(text: str) -> dict[str, str]:
    """Parse ``sysctl NAME...`` / ``sysctl -a`` output (``key: value`` lines).

    Lines that are not ``key: value`` (a multi-line value's continuation, a grep
    context line) are skipped; an empty value (``hw.osenvironment: ``) is kept as ``""``.

    Raises:
        ProbeError: Not a single ``key: value`` line was found.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _SYSCTL_LINE.match(line.rstrip("\r"))
        if match:
            values[match["key"]] = (match["value"] or "").strip()
    if not values:
        first = text.strip().splitlines()[0][:80] if text.strip() else "empty output"
        raise ProbeError(f"sysctl output has no 'key: value' line (it starts with {first!r})")
    return values


def parse_sysctl_values(text: str, keys: Sequence[str]) -> dict[str, str]:
    """Parse ``sysctl -n KEY...`` output: one value per line, in the order of ``keys``.

    Raises:
        ProbeError: The number of lines differs from the number of keys.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != len(keys):
        raise ProbeError(
            f"`sysctl -n {' '.join(keys)}` printed {len(lines)} line(s) for {len(keys)} key(s)"
        )
    return dict(zip(keys, lines, strict=True))


class ChipName(NamedTuple):
    """An Apple Silicon chip's name taken apart.

    Attributes:
        generation: N in ``MN``; ``None`` when the name has no ``M<digits>``.
        variant: ``"Pro"``, ``"Max"``, ``"Ultra"`` (or a later tier); ``None`` for base.
        virtual: ``"(Virtual)"`` in the name: a macOS virtual machine.
    """

    generation: int | None
    variant: str | None
    virtual: bool


def parse_chip(brand: str) -> ChipName:
    """Take ``"Apple M2 Ultra"`` apart into generation 2, variant ``"Ultra"``."""
    match = _CHIP.search(brand)
    virtual = "(virtual)" in brand.lower()
    if match is None:
        return ChipName(None, None, virtual)
    return ChipName(int(match["generation"]), match["variant"], virtual)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def perf_levels_from_sysctl(values: Mapping[str, str]) -> list[PerfLevel]:
    """The core types from ``hw.perflevelN.*`` keys, fastest (``perflevel0``) first.

    Keys may come in any order (the M1 Pro's ``sysctl -a`` lists ``perflevel1`` first).
    Levels are classified by their name (``Super``, ``Performance``, ``Efficiency``,
    ``Standard``); macOS releases that published no names had exactly two levels,
    performance then efficiency, so a nameless pair is classified by position.
    """
    fields: dict[int, dict[str, str]] = {}
    for key, value in values.items():
        match = _PERFLEVEL_KEY.match(key)
        if match:
            fields.setdefault(int(match["index"]), {})[match["field"]] = value
    count = _int(values.get("hw.nperflevels")) or len(fields)
    levels: list[PerfLevel] = []
    for index in sorted(fields):
        level = fields[index]
        name = level.get("name") or None
        kind: PerfLevelKind
        if name is not None:
            kind = _KINDS.get(name.strip().lower(), "unknown")
        elif count == 2:
            kind = "performance" if index == 0 else "efficiency"
        else:
            kind = "unknown"
        levels.append(
            PerfLevel(
                index=index,
                name=name,
                kind=kind,
                physical_cores=_int(level.get("physicalcpu") or level.get("physicalcpu_max")),
                logical_cores=_int(level.get("logicalcpu") or level.get("logicalcpu_max")),
                l1i_cache_bytes=_int(level.get("l1icachesize")),
                l1d_cache_bytes=_int(level.get("l1dcachesize")),
                l2_cache_bytes=_int(level.get("l2cachesize")),
                cpus_per_l2=_int(level.get("cpusperl2")),
            )
        )
    return levels


def core_counts(levels: Sequence[PerfLevel]) -> tuple[int | None, int | None]:
    """Performance (``Super`` + ``Performance``) and efficiency cores of ``levels``.

    Returns:
        ``(performance, efficiency)``; both ``None`` when no level is of a known fast or
        efficient kind (no levels, or only a virtual machine's ``Standard`` cores).
    """
    known = [lv for lv in levels if lv.kind in _FAST_KINDS or lv.kind == "efficiency"]
    if not known:
        return None, None
    fast = sum(lv.physical_cores or 0 for lv in known if lv.kind in _FAST_KINDS)
    efficient = sum(lv.physical_cores or 0 for lv in known if lv.kind == "efficiency")
    return fast, efficient


def apple_silicon_from(
    *,
    sysctl: Mapping[str, str] | None = None,
    hardware: MacHardwareOverview | None = None,
    gpu: AppleGpuInfo | None = None,
    sw_vers: Mapping[str, str] | None = None,
    thermal: ThermalInfo | None = None,
    low_power_mode: bool | None = None,
) -> AppleSiliconInfo | None:
    """Combine what the macOS tools said into one record.

    ``sysctl`` is preferred where both it and ``system_profiler`` know a fact (exact
    bytes, per-level detail); ``system_profiler`` fills what sysctl lacks.

    Args:
        sysctl: ``parse_sysctl`` output (``machdep.cpu.brand_string``, ``hw.memsize``,
            ``hw.perflevelN.*``).
        hardware: ``parse_system_profiler_hardware`` output.
        gpu: ``parse_system_profiler_displays`` output.
        sw_vers: ``parse_sw_vers`` output.
        thermal: ``parse_pmset_therm`` output.
        low_power_mode: ``parse_pmset_lowpowermode`` output.

    Returns:
        The record, or ``None`` when the chip is not Apple Silicon (an Intel Mac) or no
        source named a chip.
    """
    sysctl = sysctl or {}
    chip = sysctl.get("machdep.cpu.brand_string") or (hardware.chip if hardware else None)
    if not chip or not chip.startswith("Apple"):
        return None
    name = parse_chip(chip)
    levels = perf_levels_from_sysctl(sysctl)
    fast, efficient = core_counts(levels)
    if fast is None and efficient is None and hardware is not None:
        fast, efficient = hardware.performance_cores, hardware.efficiency_cores
    memory = _int(sysctl.get("hw.memsize")) or (hardware.memory_bytes if hardware else None)
    sw_vers = sw_vers or {}
    return AppleSiliconInfo(
        chip=chip,
        generation=name.generation,
        variant=name.variant,
        virtual=name.virtual,
        model_name=hardware.model_name if hardware else None,
        model_identifier=(hardware.model_identifier if hardware else None)
        or sysctl.get("hw.model"),
        perf_levels=levels,
        performance_cores=fast,
        efficiency_cores=efficient,
        gpu=gpu,
        unified_memory_bytes=memory,
        macos_version=sw_vers.get("ProductVersion"),
        macos_build=sw_vers.get("BuildVersion"),
        low_power_mode=low_power_mode,
        thermal=thermal,
    )
