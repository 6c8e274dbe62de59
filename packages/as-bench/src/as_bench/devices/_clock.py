"""The clock seam: where a device and the engine read the time and the CPU's accounting.

Everything the engine decides by time (warm-up stability and its time limits,
calibration, the stopping rule, the measurement's duration, the CPU-contention warning)
reads it from the device's :class:`Clock` and :class:`CpuTimes`, never from
:mod:`time` directly. Real devices use ``time.perf_counter_ns`` and the kernel's CPU
accounting; :mod:`as_bench.testing` substitutes fakes, so the engine's logic can be
tested exactly, whatever else the machine is doing.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol

import psutil

__all__ = ["Clock", "CpuTimes", "read_cpu_times"]


class Clock(Protocol):
    """A monotonic clock: called with no arguments, returns integer nanoseconds.

    Only differences between two readings mean anything. The default everywhere is
    :func:`time.perf_counter_ns`; :class:`as_bench.testing.FakeClock` is a fake.
    """

    def __call__(self) -> int:
        """The current reading, in nanoseconds."""
        ...


class CpuTimes(NamedTuple):
    """CPU time spent so far, as the kernel accounts it, in seconds.

    Attributes:
        machine_busy_s: Busy (non-idle, non-iowait) CPU time of the whole machine, all
            cores together.
        own_busy_s: User plus system CPU time of this process.
        cpu_count: Logical CPUs of the machine.
    """

    machine_busy_s: float
    own_busy_s: float
    cpu_count: int


def read_cpu_times() -> CpuTimes | None:
    """The kernel's CPU accounting now (psutil); ``None`` where it cannot be read.

    Containers may hide ``/proc/stat``: then there is nothing to say about contention.
    """
    try:
        times = psutil.cpu_times()
        own = psutil.Process(os.getpid()).cpu_times()
    except (psutil.Error, OSError):
        return None
    idle = times.idle + getattr(times, "iowait", 0.0)
    return CpuTimes(
        machine_busy_s=float(sum(times) - idle),
        own_busy_s=float(own.user + own.system),
        cpu_count=psutil.cpu_count() or 1,
    )
