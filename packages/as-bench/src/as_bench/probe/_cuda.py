"""NVIDIA GPUs: torch's view of them, ``nvidia-smi``, and the driver's versions.

torch is asked only where an NVIDIA driver is present (``nvidia-smi`` on PATH or
``/proc/driver/nvidia/version``), and then in a child process unless the caller has
already initialised CUDA through torch: querying device properties creates a CUDA
context, which costs GPU memory and makes a later ``fork`` unsafe, and a probe must not
do that to the process that measures.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from as_bench.exceptions import ProbeError
from as_bench.probe._common import run_command
from as_bench.probe._records import CudaDeviceInfo
from as_core.extras import is_installed

__all__ = [
    "NVIDIA_SMI_QUERY",
    "collect_cuda_devices",
    "cuda_driver_version",
    "parse_nvidia_driver_version",
    "parse_nvidia_smi_csv",
    "parse_torch_cuda_report",
]

log = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = (
    "--query-gpu=name,memory.total,driver_version,compute_cap",
    "--format=csv,noheader",
)
# Drivers older than 510 do not know compute_cap; they reject the whole query.
_NVIDIA_SMI_QUERY_OLD = ("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
_PROC_VERSION = Path("/proc/driver/nvidia/version")
_NVRM = re.compile(r"NVRM version:.*?\s(?P<version>\d+\.\d+(?:\.\d+)?)\s")
_MEMORY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]i?B)$", re.IGNORECASE)
_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_TORCH_TIMEOUT_S = 120.0
_SMI_TIMEOUT_S = 15.0


def _na(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") or value in {"N/A", "[N/A]"} else value


def _memory_bytes(value: str | None) -> int | None:
    if value is None:
        return None
    match = _MEMORY.match(value)
    if match is None:
        raise ProbeError(f"nvidia-smi memory.total {value!r} is not like '81559 MiB'")
    return round(float(match["number"]) * _UNITS[match["unit"][0].lower()])


def parse_nvidia_smi_csv(text: str) -> list[CudaDeviceInfo]:
    """Parse the CSV that ``nvidia-smi`` prints for :data:`NVIDIA_SMI_QUERY`.

    That is ``--query-gpu=name,memory.total,driver_version,compute_cap
    --format=csv,noheader``, or the three-field form without ``compute_cap``. A line
    looks like ``NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15, 9.0``; values nvidia-smi
    cannot tell read ``[N/A]`` and become ``None``. Indexes are the line numbers, which
    are nvidia-smi's own (it ignores ``CUDA_VISIBLE_DEVICES``).

    Raises:
        ProbeError: A line does not have three or four fields.
    """
    devices: list[CudaDeviceInfo] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        # Split from the right: of these fields only a name could ever hold a comma.
        fields = [field.strip() for field in line.rsplit(",", 3)]
        if len(fields) not in (3, 4) or not fields[0]:
            raise ProbeError(f"nvidia-smi line {line!r} is not 'name, memory, driver[, cap]'")
        devices.append(
            CudaDeviceInfo(
                index=len(devices),
                name=fields[0],
                memory_total_bytes=_memory_bytes(_na(fields[1])),
                driver_version=_na(fields[2]),
                compute_capability=_na(fields[3]) if len(fields) == 4 else None,
                source="nvidia-smi",
            )
        )
    return devices


def parse_nvidia_driver_version(text: str) -> str | None:
    """The driver version from ``/proc/driver/nvidia/version`` (its ``NVRM version`` line)."""
    match = _NVRM.search(text)
    return match["version"] if match else None


def parse_torch_cuda_report(text: str) -> tuple[str | None, list[CudaDeviceInfo]]:
    """Read the JSON report of ``python -m as_bench.probe._torch_cuda``.

    Returns:
        ``(CUDA runtime version torch was built with, the devices torch sees)``.

    Raises:
        ProbeError: The report is not the expected JSON.
    """
    try:
        report: Any = json.loads(text)
        runtime = report["cuda_runtime"]
        devices = [
            CudaDeviceInfo(
                index=d["index"],
                name=d["name"],
                memory_total_bytes=d["total_memory"] or None,
                compute_capability=f"{d['major']}.{d['minor']}",
                multiprocessor_count=d["multi_processor_count"] or None,
                cuda_runtime_version=runtime,
                source="torch",
            )
            for d in report["devices"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"torch CUDA report is not valid: {exc}") from exc
    return runtime, devices


def cuda_driver_version() -> str | None:
    """The newest CUDA version the installed driver supports (``cuDriverGetVersion``).

    Read through ``libcuda`` with ctypes: it needs no CUDA context and no torch.
    """
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
            return None
        return f"{version.value // 1000}.{version.value % 1000 // 10}"
    return None


def _torch_report() -> str:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        from as_bench.probe._torch_cuda import report  # same process: CUDA is already up

        return report()
    package_dir = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_dir, path) if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "as_bench.probe._torch_cuda"],
            capture_output=True,
            text=True,
            timeout=_TORCH_TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"torch CUDA query did not finish within {_TORCH_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        raise ProbeError(f"torch CUDA query failed (status {done.returncode}): {tail}")
    return done.stdout


def collect_cuda_devices() -> tuple[list[CudaDeviceInfo], list[str]]:
    """The NVIDIA GPUs of this machine, and warnings for what could not be read.

    torch's list (the devices this process can use) wins when torch is installed and
    sees CUDA; ``nvidia-smi`` supplies the driver version, and the device list otherwise.
    """
    warnings: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi is None and not _PROC_VERSION.exists():
        return [], warnings  # no NVIDIA driver: nothing to ask, and torch stays unimported
    smi_devices: list[CudaDeviceInfo] = []
    if smi is not None:
        try:
            try:
                text = run_command([smi, *NVIDIA_SMI_QUERY], timeout=_SMI_TIMEOUT_S)
            except ProbeError as first:
                try:
                    text = run_command([smi, *_NVIDIA_SMI_QUERY_OLD], timeout=_SMI_TIMEOUT_S)
                except ProbeError:
                    raise first from None  # not an old driver: the first error says why
            smi_devices = parse_nvidia_smi_csv(text)
        except ProbeError as exc:
            warnings.append(str(exc))
    driver = next((d.driver_version for d in smi_devices if d.driver_version), None)
    if driver is None:
        try:
            driver = parse_nvidia_driver_version(_PROC_VERSION.read_text(errors="replace"))
        except OSError as exc:
            log.debug("no driver version from %s: %s", _PROC_VERSION, exc)
    torch_devices: list[CudaDeviceInfo] = []
    if is_installed("torch"):
        try:
            _, torch_devices = parse_torch_cuda_report(_torch_report())
        except ProbeError as exc:
            warnings.append(str(exc))
    cuda = cuda_driver_version()
    devices = torch_devices or smi_devices
    for warning in warnings:
        log.warning("hardware probe: %s", warning)
    return [
        d.model_copy(update={"driver_version": driver, "cuda_driver_version": cuda})
        for d in devices
    ], warnings
