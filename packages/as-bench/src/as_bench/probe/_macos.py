"""Live collection on macOS: run sysctl, system_profiler, pmset and sw_vers, then parse.

Each tool runs with a timeout, all at once (``system_profiler`` alone takes a second or
more); a tool that fails or prints something unexpected costs only its own facts and
leaves a warning in the record.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from as_bench.exceptions import ProbeError
from as_bench.probe._apple import apple_silicon_from, parse_sysctl
from as_bench.probe._common import run_command
from as_bench.probe._pmset import parse_pmset_lowpowermode, parse_pmset_therm, parse_sw_vers
from as_bench.probe._records import AppleGpuInfo, AppleSiliconInfo, MacHardwareOverview
from as_bench.probe._system_profiler import (
    parse_system_profiler_displays,
    parse_system_profiler_hardware,
)

__all__ = ["MACOS_COMMANDS", "Command", "MacosFacts", "collect_macos"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Command(NamedTuple):
    """A tool to run: its arguments, a timeout, and whether its exit status counts."""

    args: tuple[str, ...]
    timeout: float
    check: bool = True


# Absolute paths: a Homebrew or conda tool of the same name earlier on PATH must not
# answer in place of the system's own.
MACOS_COMMANDS: dict[str, Command] = {
    # sysctl exits 1 when one name is unknown (sysctl.proc_translated before macOS 11)
    # but still prints the rest.
    "sysctl": Command(
        ("/usr/sbin/sysctl", "hw", "machdep.cpu", "sysctl.proc_translated"), 10.0, check=False
    ),
    "system_profiler": Command(
        ("/usr/sbin/system_profiler", "-json", "SPHardwareDataType", "SPDisplaysDataType"),
        60.0,
    ),
    "pmset_therm": Command(("/usr/bin/pmset", "-g", "therm"), 10.0),
    "pmset": Command(("/usr/bin/pmset", "-g"), 10.0),
    "sw_vers": Command(("/usr/bin/sw_vers",), 10.0),
}


@dataclass
class MacosFacts:
    """What the macOS tools said, ready for :class:`~as_bench.probe.HardwareInfo`.

    Attributes:
        apple_silicon: The Apple Silicon record; ``None`` on an Intel Mac.
        cpu_model: ``machdep.cpu.brand_string`` (or the chip from system_profiler).
        os_name: ``"macOS 15.1 (24B83)"``.
        warnings: What could not be read, in words.
    """

    apple_silicon: AppleSiliconInfo | None = None
    cpu_model: str | None = None
    os_name: str | None = None
    warnings: list[str] = field(default_factory=list)


def _run_all(commands: Mapping[str, Command]) -> dict[str, str | Exception]:
    with ThreadPoolExecutor(max_workers=max(1, len(commands))) as pool:
        futures = {
            key: pool.submit(run_command, cmd.args, timeout=cmd.timeout, check=cmd.check)
            for key, cmd in commands.items()
        }
        results: dict[str, str | Exception] = {}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except ProbeError as exc:
                results[key] = exc
        return results


def _parse(
    outputs: Mapping[str, str | Exception],
    key: str,
    parser: Callable[[str], T],
    warnings: list[str],
) -> T | None:
    output = outputs.get(key)
    if output is None:
        return None
    if isinstance(output, Exception):
        warnings.append(str(output))
        return None
    try:
        return parser(output)
    except ProbeError as exc:
        warnings.append(str(exc))
        return None


def _decode_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeError(f"`system_profiler -json` printed invalid JSON: {exc}") from exc


def _system_profiler(
    outputs: Mapping[str, str | Exception], warnings: list[str]
) -> tuple[MacHardwareOverview | None, AppleGpuInfo | None]:
    data: Any = _parse(outputs, "system_profiler", _decode_json, warnings)
    if not isinstance(data, dict):
        return None, None
    hardware = gpu = None
    try:
        hardware = parse_system_profiler_hardware(data)
    except ProbeError as exc:
        warnings.append(str(exc))
    try:
        gpu = parse_system_profiler_displays(data)
    except ProbeError as exc:
        warnings.append(str(exc))
    return hardware, gpu


def collect_macos(commands: Mapping[str, Command] = MACOS_COMMANDS) -> MacosFacts:
    """Run the macOS tools and combine what they say.

    Args:
        commands: The tools to run, by role (see :data:`MACOS_COMMANDS`); a role left
            out is not asked.

    Returns:
        The facts; a tool that failed leaves its fields ``None`` and a warning.
    """
    outputs = _run_all(commands)
    warnings: list[str] = []
    sysctl = _parse(outputs, "sysctl", parse_sysctl, warnings)
    hardware, gpu = _system_profiler(outputs, warnings)
    thermal = _parse(outputs, "pmset_therm", parse_pmset_therm, warnings)
    low_power = _parse(outputs, "pmset", parse_pmset_lowpowermode, warnings)
    sw_vers = _parse(outputs, "sw_vers", parse_sw_vers, warnings)
    apple = apple_silicon_from(
        sysctl=sysctl,
        hardware=hardware,
        gpu=gpu,
        sw_vers=sw_vers,
        thermal=thermal,
        low_power_mode=low_power,
    )
    cpu_model = (sysctl or {}).get("machdep.cpu.brand_string") or (
        hardware.chip if hardware else None
    )
    version = (sw_vers or {}).get("ProductVersion") or platform.mac_ver()[0] or None
    os_name = None
    if version:
        build = (sw_vers or {}).get("BuildVersion")
        os_name = f"macOS {version} ({build})" if build else f"macOS {version}"
    if (sysctl or {}).get("sysctl.proc_translated") == "1":
        warnings.append(
            "this Python runs as x86_64 under Rosetta 2; install an arm64 Python to measure "
            "native performance"
        )
    for warning in warnings:
        log.warning("hardware probe: %s", warning)
    return MacosFacts(apple_silicon=apple, cpu_model=cpu_model, os_name=os_name, warnings=warnings)
