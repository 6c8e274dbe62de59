"""Linux: CPU model, distribution, frequency governor and control-group limits.

Every reader takes the filesystem root as an argument (``/`` by default) so that tests
lay out ``proc`` and ``sys`` trees in a temporary directory. Control groups: cgroup v2
when ``/sys/fs/cgroup/cgroup.controllers`` exists (the unified hierarchy), else the v1
controllers mounted under ``/sys/fs/cgroup/<controller>`` (legacy and hybrid layouts).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from as_bench.exceptions import ProbeError
from as_bench.probe._records import CgroupLimits, LinuxInfo

__all__ = [
    "collect_linux",
    "parse_cfs_quota",
    "parse_cpu_max",
    "parse_cpuinfo_model",
    "parse_memory_max",
    "parse_os_release",
    "parse_proc_cgroup",
    "read_cgroup_limits",
    "read_cpu_governor",
]

log = logging.getLogger(__name__)

ROOT = Path("/")

# cgroup v1 reports "no limit" as the page counter's maximum, rounded down to a page
# (9223372036854771712 with 4 KiB pages); no real limit comes near 2**62 bytes.
_UNLIMITED_BYTES = 2**62

_CPUINFO_KEYS = ("model name", "Model", "Hardware", "cpu model", "uarch")
_OS_RELEASE_LINE = re.compile(r"^(?P<key>[A-Z0-9_]+)=(?P<value>.*)$")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def parse_cpuinfo_model(text: str) -> str | None:
    """The CPU model from ``/proc/cpuinfo``: ``model name`` on x86, else the ARM fields."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip(), value.strip())
    for key in _CPUINFO_KEYS:
        if key in fields:
            return fields[key]
    return None


def parse_os_release(text: str) -> dict[str, str]:
    """Parse ``/etc/os-release`` (shell-style ``KEY=value``, values maybe quoted)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _OS_RELEASE_LINE.match(line.strip())
        if match:
            value = match["value"].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[match["key"]] = value
    return values


def read_cpu_governor(root: Path = ROOT) -> str | None:
    """The cpufreq governors of all CPUs, joined with commas when they differ.

    Returns:
        E.g. ``"performance"`` or ``"performance,powersave"``; ``None`` where cpufreq is
        not exposed (virtual machines and most containers).
    """
    cpu_dir = root / "sys/devices/system/cpu"
    governors: set[str] = set()
    for path in cpu_dir.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        text = _read(path)
        if text and text.strip():
            governors.add(text.strip())
    return ",".join(sorted(governors)) if governors else None


def parse_proc_cgroup(text: str) -> list[tuple[int, tuple[str, ...], str]]:
    """Parse ``/proc/self/cgroup``: ``hierarchy-id:controller,list:path`` per line.

    Returns:
        ``(hierarchy id, controllers, path)`` for each line; the cgroup v2 entry is
        ``(0, (), path)``. Named v1 hierarchies keep their ``name=...`` controller.
    """
    entries: list[tuple[int, tuple[str, ...], str]] = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        controllers = tuple(c for c in parts[1].split(",") if c)
        entries.append((int(parts[0]), controllers, parts[2] or "/"))
    return entries


def parse_cpu_max(text: str) -> float | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` (``"max 100000"`` means unlimited).

    Raises:
        ProbeError: Not ``"<quota|max> [period]"``.
    """
    parts = text.split()
    if not parts or len(parts) > 2:
        raise ProbeError(f"cpu.max {text.strip()!r} is not '<quota|max> [period]'")
    if parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) == 2 else 100_000
    except ValueError as exc:
        raise ProbeError(f"cpu.max {text.strip()!r} is not '<quota|max> [period]'") from exc
    if quota <= 0 or period <= 0:
        raise ProbeError(f"cpu.max {text.strip()!r} has a non-positive quota or period")
    return quota / period


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """Cores allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none).

    Raises:
        ProbeError: Either file does not hold an integer.
    """
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError as exc:
        raise ProbeError(
            f"cpu.cfs_quota_us/cpu.cfs_period_us {quota_text.strip()!r}/"
            f"{period_text.strip()!r} are not integers"
        ) from exc
    if quota < 0 or period <= 0:
        return None
    return quota / period


def parse_memory_max(text: str) -> int | None:
    """Bytes allowed by ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1).

    Returns:
        The limit, or ``None`` for unlimited: ``max``, or v1's page-counter maximum.

    Raises:
        ProbeError: Neither ``max`` nor an integer.
    """
    value = text.strip()
    if value == "max":
        return None
    try:
        limit = int(value)
    except ValueError as exc:
        raise ProbeError(f"memory limit {value!r} is neither 'max' nor a byte count") from exc
    return None if limit >= _UNLIMITED_BYTES or limit <= 0 else limit


def _group_dirs(mount: Path, group: str) -> list[Path]:
    """The group's directory and its ancestors up to the mount, those that exist.

    When the group's path does not exist under the mount (a container sees its own
    group as the root of the mount), only the mount itself is read.
    """
    relative = PurePosixPath(group).relative_to("/") if group.startswith("/") else None
    dirs: list[Path] = []
    if relative is not None and relative.parts:
        leaf = mount.joinpath(*relative.parts)
        if leaf.is_dir():
            dirs.append(leaf)
            dirs.extend(p for p in leaf.parents if p.is_relative_to(mount) and p != mount)
    dirs.append(mount)
    return dirs


def _tightest(
    dirs: list[Path], read_one: Callable[[Path], float | int | None]
) -> float | int | None:
    limits: list[float | int] = []
    for directory in dirs:
        try:
            limit = read_one(directory)
        except ProbeError as exc:
            log.warning("cgroup limit in %s: %s", directory, exc)
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _v2_cpu(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    return parse_cpu_max(text) if text is not None else None


def _v2_memory(directory: Path) -> int | None:
    text = _read(directory / "memory.max")
    return parse_memory_max(text) if text is not None else None


def _v1_cpu(directory: Path) -> float | None:
    quota = _read(directory / "cpu.cfs_quota_us")
    period = _read(directory / "cpu.cfs_period_us")
    return parse_cfs_quota(quota, period) if quota is not None and period is not None else None


def _v1_memory(directory: Path) -> int | None:
    text = _read(directory / "memory.limit_in_bytes")
    return parse_memory_max(text) if text is not None else None


def _v1_group(entries: list[tuple[int, tuple[str, ...], str]], controller: str) -> str:
    for _, controllers, path in entries:
        if controller in controllers:
            return path
    return "/"


def read_cgroup_limits(root: Path = ROOT) -> CgroupLimits:
    """The CPU and memory limits of this process's control group.

    Args:
        root: The filesystem root holding ``proc/self/cgroup`` and ``sys/fs/cgroup``.

    Returns:
        The tightest limits along the group's path (a parent's limit binds its children);
        ``version=None`` when no cgroup filesystem is mounted.
    """
    fs = root / "sys/fs/cgroup"
    entries = parse_proc_cgroup(_read(root / "proc/self/cgroup") or "")
    if (fs / "cgroup.controllers").is_file():
        group = next((path for hid, _, path in entries if hid == 0), "/")
        dirs = _group_dirs(fs, group)
        cpu = _tightest(dirs, _v2_cpu)
        memory = _tightest(dirs, _v2_memory)
        return CgroupLimits(
            version=2,
            path=group,
            cpu_limit_cores=float(cpu) if cpu is not None else None,
            memory_limit_bytes=int(memory) if memory is not None else None,
        )
    cpu_mount = next((fs / n for n in ("cpu,cpuacct", "cpu") if (fs / n).is_dir()), None)
    memory_mount = fs / "memory" if (fs / "memory").is_dir() else None
    if cpu_mount is None and memory_mount is None:
        return CgroupLimits()
    cpu_group = _v1_group(entries, "cpu")
    cpu = _tightest(_group_dirs(cpu_mount, cpu_group), _v1_cpu) if cpu_mount else None
    memory_group = _v1_group(entries, "memory")
    memory = (
        _tightest(_group_dirs(memory_mount, memory_group), _v1_memory) if memory_mount else None
    )
    return CgroupLimits(
        version=1,
        path=cpu_group,
        cpu_limit_cores=float(cpu) if cpu is not None else None,
        memory_limit_bytes=int(memory) if memory is not None else None,
    )


def _affinity() -> int | None:
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return len(getaffinity(0)) or None
    except OSError:
        return None


def collect_linux(root: Path = ROOT) -> tuple[LinuxInfo, str | None, str | None]:
    """Read the Linux facts.

    Args:
        root: The filesystem root (tests pass a prepared directory).

    Returns:
        ``(linux info, CPU model from /proc/cpuinfo, distribution name)``.
    """
    cpuinfo = _read(root / "proc/cpuinfo")
    os_release = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release")
    release = parse_os_release(os_release) if os_release else {}
    distribution = release.get("PRETTY_NAME") or release.get("NAME")
    info = LinuxInfo(
        cpu_governor=read_cpu_governor(root),
        cgroup=read_cgroup_limits(root),
        affinity_cpus=_affinity(),
    )
    return info, parse_cpuinfo_model(cpuinfo) if cpuinfo else None, distribution
