"""``summary_rows``: the hardware record as (label, value) rows for people."""

from __future__ import annotations

from as_bench.probe._records import (
    AppleSiliconInfo,
    CudaDeviceInfo,
    HardwareInfo,
    LinuxInfo,
)
from as_core.fmt import format_bytes as _format_bytes

__all__ = ["format_bytes", "summary_rows"]


def format_bytes(count: int | None) -> str:
    """``17179869184`` as ``"16.0 GiB"``; ``None`` as ``"unknown"``."""
    return _format_bytes(count, missing="unknown")


def _or(value: object, missing: str = "unknown") -> str:
    return missing if value is None else str(value)


def _apple_rows(apple: AppleSiliconInfo) -> list[tuple[str, str]]:
    chip = apple.chip
    if apple.model_name or apple.model_identifier:
        parts = [p for p in (apple.model_name, apple.model_identifier) if p]
        chip = f"{chip} in {' '.join(parts)}"
    rows = [("Chip", chip)]
    if apple.perf_levels:
        levels = " + ".join(
            f"{_or(lv.physical_cores, '?')} {lv.name or lv.kind}" for lv in apple.perf_levels
        )
        rows.append(("Core types", levels))
    if apple.performance_cores is not None or apple.efficiency_cores is not None:
        rows.append(
            (
                "P / E cores",
                f"{_or(apple.performance_cores, '?')} performance, "
                f"{_or(apple.efficiency_cores, '?')} efficiency",
            )
        )
    if apple.gpu is not None:
        gpu = apple.gpu.name
        if apple.gpu.cores is not None:
            gpu += f", {apple.gpu.cores} cores"
        if apple.gpu.metal_support:
            gpu += f", {apple.gpu.metal_support}"
        rows.append(("GPU", gpu))
    rows.append(("Unified memory", format_bytes(apple.unified_memory_bytes)))
    if apple.low_power_mode is not None:
        rows.append(("Low power mode", "on" if apple.low_power_mode else "off"))
    if apple.thermal is not None:
        thermal: str = apple.thermal.state
        if apple.thermal.cpu_speed_limit is not None:
            thermal += f" (CPU speed limit {apple.thermal.cpu_speed_limit}%)"
        rows.append(("Thermal state", thermal))
    return rows


def _linux_rows(linux: LinuxInfo) -> list[tuple[str, str]]:
    cgroup = linux.cgroup
    cpu_limit = (
        "unlimited" if cgroup.cpu_limit_cores is None else f"{cgroup.cpu_limit_cores:g} cores"
    )
    memory_limit = (
        "unlimited"
        if cgroup.memory_limit_bytes is None
        else format_bytes(cgroup.memory_limit_bytes)
    )
    version = f"cgroup v{cgroup.version}" if cgroup.version else "no cgroup"
    return [
        ("CPU governor", _or(linux.cpu_governor, "not exposed")),
        ("CPU affinity", f"{_or(linux.affinity_cpus, '?')} CPUs"),
        (f"CPU limit ({version})", cpu_limit),
        (f"Memory limit ({version})", memory_limit),
    ]


def _cuda_row(device: CudaDeviceInfo) -> tuple[str, str]:
    parts = [device.name, format_bytes(device.memory_total_bytes)]
    if device.compute_capability:
        parts.append(f"compute {device.compute_capability}")
    if device.multiprocessor_count:
        parts.append(f"{device.multiprocessor_count} SMs")
    return (f"cuda:{device.index}", ", ".join(parts))


def _driver_row(device: CudaDeviceInfo) -> tuple[str, str]:
    text = _or(device.driver_version)
    if device.cuda_driver_version:
        text += f", CUDA {device.cuda_driver_version}"
    if device.cuda_runtime_version:
        text += f" (torch built for CUDA {device.cuda_runtime_version})"
    return ("NVIDIA driver", text)


def summary_rows(info: HardwareInfo) -> list[tuple[str, str]]:
    """The record as ``(label, value)`` rows, in reading order, for a two-column table."""
    rows = [
        ("OS", info.os.name or f"{info.os.system} {info.os.release}"),
        ("Kernel", f"{info.os.system} {info.os.release} ({info.os.machine})"),
        ("Python", f"{info.python.version} ({info.python.implementation})"),
        ("CPU", _or(info.cpu.model)),
        (
            "Cores",
            f"{_or(info.cpu.physical_cores, '?')} physical, "
            f"{_or(info.cpu.logical_cores, '?')} logical",
        ),
        (
            "Memory",
            f"{format_bytes(info.memory.total_bytes)} total, "
            f"{format_bytes(info.memory.available_bytes)} available",
        ),
    ]
    if info.apple_silicon is not None:
        rows.extend(_apple_rows(info.apple_silicon))
    if info.linux is not None:
        rows.extend(_linux_rows(info.linux))
    rows.extend(_cuda_row(device) for device in info.cuda_devices)
    if info.cuda_devices:
        rows.append(_driver_row(info.cuda_devices[0]))
    for name, version in info.libraries.items():
        rows.append((name, _or(version, "not installed")))
    for name, value in info.threads.items():
        rows.append((name, _or(value, "unset")))
    rows.extend(("Warning", warning) for warning in info.warnings)
    return rows
