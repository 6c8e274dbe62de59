r"""``pmset`` (thermal state, low-power mode) and ``sw_vers`` (macOS version) output.

Formats, from pmset's source and real captures: ``pmset -g therm`` prints
``Note: No thermal warning level has been recorded`` (and the same for the performance
warning level and the CPU power status) for what never happened since boot, else a
dated ``Thermal Warning Level = N`` / ``Performance Warning Level = N`` line and tab-
indented ``CPU_Speed_Limit \t= N`` entries. ``pmset -g`` lists settings as
``name   value``; Macs with a high-power mode say ``powermode`` (0 automatic, 1 low
power, 2 high power) where others say ``lowpowermode`` (0/1).
"""

from __future__ import annotations

import re

from as_bench.exceptions import ProbeError
from as_bench.probe._records import ThermalInfo, ThermalState

__all__ = ["parse_pmset_lowpowermode", "parse_pmset_therm", "parse_sw_vers"]

_LEVEL = re.compile(r"(?P<what>Thermal|Performance) Warning Level\s*=\s*(?P<level>-?\d+)", re.I)
_CPU_LIMIT = re.compile(r"^\s*(?P<key>CPU_\w+)\s*=\s*(?P<value>-?\d+)\s*$")
_NOTE = re.compile(r"^\s*Note: No (thermal warning level|performance warning level|CPU power)")
# The setting name, then its value; markdown emphasis around the line (as pasted into an
# issue) is tolerated.
_POWER_MODE = re.compile(r"^[\s*_]*(?P<key>lowpowermode|powermode)\s+(?P<value>\d+)\b")
_SW_VERS = re.compile(r"^\s*(?P<key>[A-Za-z]+):\s*(?P<value>\S.*?)\s*$")


def parse_pmset_therm(text: str) -> ThermalInfo:
    """Parse ``pmset -g therm``.

    Raises:
        ProbeError: No line of the output is one pmset prints for ``-g therm``.
    """
    levels: dict[str, int] = {}
    limits: dict[str, int] = {}
    recognised = False
    for line in text.splitlines():
        if _NOTE.match(line):
            recognised = True
        elif level := _LEVEL.search(line):
            levels[level["what"].lower()] = int(level["level"])
            recognised = True
        elif limit := _CPU_LIMIT.match(line):
            limits[limit["key"]] = int(limit["value"])
            recognised = True
    if not recognised:
        head = text.strip()[:60] or "empty output"
        raise ProbeError(f"`pmset -g therm` output not recognised (it starts {head!r})")
    speed = limits.get("CPU_Speed_Limit")
    scheduler = limits.get("CPU_Scheduler_Limit")
    state: ThermalState
    if any(limit is not None and limit < 100 for limit in (speed, scheduler)):
        state = "throttled"
    elif any(level > 0 for level in levels.values()):
        state = "warning"
    else:
        state = "nominal"
    return ThermalInfo(
        state=state,
        thermal_warning_level=levels.get("thermal"),
        performance_warning_level=levels.get("performance"),
        cpu_speed_limit=speed,
        cpu_scheduler_limit=scheduler,
        cpu_available_cpus=limits.get("CPU_Available_CPUs"),
    )


def parse_pmset_lowpowermode(text: str) -> bool | None:
    """Whether low-power mode is on, from ``pmset -g`` (or ``pmset -g custom``).

    The first ``lowpowermode`` or ``powermode`` line wins; ``pmset -g`` shows the
    settings currently in use first.

    Returns:
        ``True``/``False``, or ``None`` when the output has no such line (Macs and macOS
        versions without the setting).
    """
    for line in text.splitlines():
        match = _POWER_MODE.match(line)
        if match is None:
            continue
        value = int(match["value"])
        if match["key"] == "powermode":
            return value == 1  # 0 automatic, 1 low power, 2 high power
        return value != 0
    return None


def parse_sw_vers(text: str) -> dict[str, str]:
    """Parse ``sw_vers``: ``ProductName``, ``ProductVersion``, ``BuildVersion`` (and more).

    The separator is a colon then tabs (two since macOS 11, one before) or spaces.

    Raises:
        ProbeError: No ``Key: value`` line was found.
    """
    values = {m["key"]: m["value"] for line in text.splitlines() if (m := _SW_VERS.match(line))}
    if not values:
        head = text.strip()[:60] or "empty output"
        raise ProbeError(f"`sw_vers` output not recognised (it starts {head!r})")
    return values
