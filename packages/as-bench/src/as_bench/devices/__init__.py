"""Devices to measure on: ``cpu``, ``cuda[:N]``, ``mps``, ``mlx``.

>>> from as_bench.devices import get_device, available_devices
>>> get_device("cpu").name
'cpu'
>>> "cpu" in available_devices()
True

Each device imports its library (torch, mlx) only when it is created or asked whether it
is available, and only if the library is installed.
"""

from __future__ import annotations

import re

from as_bench.devices._base import (
    VALID_FORMS,
    CallLoop,
    Device,
    DeviceKind,
    InvalidDeviceSpecError,
    make_call_loop,
)
from as_bench.devices._clock import Clock, CpuTimes, read_cpu_times
from as_bench.devices._host_memory import MemoryTracker, current_rss_bytes
from as_bench.devices.cpu import CpuDevice
from as_bench.devices.cuda import CudaDevice
from as_bench.devices.mlx import MlxDevice
from as_bench.devices.mps import MpsDevice

__all__ = [
    "VALID_FORMS",
    "CallLoop",
    "Clock",
    "CpuDevice",
    "CpuTimes",
    "CudaDevice",
    "Device",
    "DeviceKind",
    "InvalidDeviceSpecError",
    "MemoryTracker",
    "MlxDevice",
    "MpsDevice",
    "available_devices",
    "current_rss_bytes",
    "get_device",
    "make_call_loop",
    "read_cpu_times",
]

_SPEC = re.compile(r"(cpu|cuda|mps|mlx)(?::(\d+))?")


def get_device(spec: str | Device) -> Device:
    """The device a string names; a :class:`Device` is returned as it is.

    Args:
        spec: ``"cpu"``, ``"cuda"`` (= ``"cuda:0"``), ``"cuda:N"``, ``"mps"`` or
            ``"mlx"``; case and surrounding spaces are ignored; ``"cpu:0"`` and
            ``"mps:0"`` are accepted as ``"cpu"`` and ``"mps"``.

    Raises:
        InvalidDeviceSpecError: ``spec`` is none of those forms (also a ``ValueError``).
        DeviceUnavailableError: The device is not usable here; the message says why
            (``torch.cuda.is_available() is False``, the extra to install, ...).
    """
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise InvalidDeviceSpecError(spec)
    match = _SPEC.fullmatch(spec.strip().lower())
    if match is None:
        raise InvalidDeviceSpecError(spec)
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        return CudaDevice(int(index) if index is not None else 0)
    if index not in (None, "0") or (kind == "mlx" and index is not None):
        raise InvalidDeviceSpecError(spec)
    if kind == "cpu":
        return CpuDevice()
    if kind == "mps":
        return MpsDevice()
    return MlxDevice()


def available_devices() -> list[str]:
    """The device strings usable on this machine, ``"cpu"`` first.

    CUDA devices are listed one by one (``"cuda:0"``, ``"cuda:1"``, ...). Asking imports
    torch and mlx where they are installed.
    """
    names = ["cpu"]
    names.extend(f"cuda:{i}" for i in range(CudaDevice.device_count()))
    if MpsDevice.is_available():
        names.append("mps")
    if MlxDevice.is_available():
        names.append("mlx")
    return names
