"""``probe()``: collect the hardware record once per process."""

from __future__ import annotations

import logging
import platform
import threading
from datetime import UTC, datetime

from as_bench.probe._common import (
    cpu_counts,
    library_versions,
    memory_info,
    python_info,
    thread_settings,
)
from as_bench.probe._cuda import collect_cuda_devices
from as_bench.probe._records import CpuInfo, HardwareInfo, LinuxInfo, OsInfo

__all__ = ["probe"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: HardwareInfo | None = None


def _collect() -> HardwareInfo:
    warnings: list[str] = []
    system = platform.system()
    os_name: str | None = None
    cpu_model: str | None = None
    apple = None
    linux: LinuxInfo | None = None
    if system == "Darwin":
        from as_bench.probe._macos import collect_macos

        mac = collect_macos()
        apple, cpu_model, os_name = mac.apple_silicon, mac.cpu_model, mac.os_name
        warnings.extend(mac.warnings)
    elif system == "Linux":
        from as_bench.probe._linux import collect_linux

        linux, cpu_model, os_name = collect_linux()
    cuda_devices, cuda_warnings = collect_cuda_devices()
    warnings.extend(cuda_warnings)
    physical, logical = cpu_counts()
    return HardwareInfo(
        collected_at=datetime.now(UTC),
        os=OsInfo(
            system=system,
            release=platform.release(),
            name=os_name,
            machine=platform.machine(),
            platform=platform.platform(),
        ),
        python=python_info(),
        cpu=CpuInfo(
            model=cpu_model or platform.processor() or None,
            architecture=platform.machine(),
            physical_cores=physical,
            logical_cores=logical,
        ),
        memory=memory_info(),
        apple_silicon=apple,
        linux=linux,
        cuda_devices=cuda_devices,
        libraries=library_versions(),
        threads=thread_settings(),
        warnings=warnings,
    )


def probe(*, refresh: bool = False) -> HardwareInfo:
    """Describe this machine: OS, CPU, memory, Apple Silicon, Linux limits, GPUs, libraries.

    The first call runs the platform's tools (a second or two on macOS, where
    ``system_profiler`` is slow); later calls return the same facts from a per-process
    cache. Facts that could not be read are ``None`` and listed in ``warnings``; the
    probe itself does not fail because one tool did.

    Args:
        refresh: Collect again instead of using the cache (thread settings and available
            memory change while a process runs; the hardware does not).

    Returns:
        A copy of the cached record, so that changing it cannot change later answers.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = _collect()
            log.debug("hardware probed: %s on %s", _cached.cpu.model, _cached.os.platform)
        return _cached.model_copy(deep=True)
