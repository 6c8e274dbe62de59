"""How much CPU other processes took while we measured.

On a shared or small machine, other processes competing for the cores inflate timings
(and a multi-threaded runtime that spins on its worker threads suffers most), yet the
samples can look perfectly stable. The measurement cannot fix that, but it can say so:
we compare the whole machine's busy CPU time with our own process's over the measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from as_bench.devices import Clock, CpuTimes, read_cpu_times

__all__ = ["ContentionMeter"]

# Warn when others used at least this many cores on average, and at least this fraction
# of the machine: a background daemon waking now and then is not worth a warning.
_MIN_CORES = 0.3
_MIN_FRACTION = 0.2
# Below this many seconds the kernel's tick-based accounting means little.
_MIN_WALL_S = 0.05


@dataclass
class ContentionMeter:
    """Start it before measuring; :meth:`warning` afterwards says whether others competed.

    Attributes:
        clock: Where wall time is read (integer nanoseconds): the device's clock.
        cpu_times: Where CPU time is read: the device's :meth:`~as_bench.devices.Device.cpu_times`
            (the kernel's accounting, or a fake device's).
    """

    clock: Clock = time.perf_counter_ns
    cpu_times: Callable[[], CpuTimes | None] = read_cpu_times
    _start: CpuTimes | None = field(default=None, init=False)
    _wall_ns: int = field(default=0, init=False)

    def start(self) -> None:
        """Take the starting readings."""
        self._start = self.cpu_times()
        self._wall_ns = self.clock()

    def others_cores(self) -> float | None:
        """Average number of cores other processes kept busy since :meth:`start`.

        ``None`` when the CPU accounting cannot be read or less than 50 ms passed.
        """
        if self._start is None:
            return None
        wall = (self.clock() - self._wall_ns) * 1e-9
        if wall <= _MIN_WALL_S:
            return None
        now = self.cpu_times()
        if now is None:
            return None
        machine = now.machine_busy_s - self._start.machine_busy_s
        own = now.own_busy_s - self._start.own_busy_s
        return max(0.0, (machine - own) / wall)

    def warning(self) -> str | None:
        """A warning in words when other processes competed for the CPUs, else ``None``."""
        cores = self.others_cores()
        count = self._start.cpu_count if self._start is not None else 1
        if cores is None or cores < max(_MIN_CORES, _MIN_FRACTION * count):
            return None
        return (
            f"other processes kept {cores:.1f} of {count} CPUs busy while measuring: timings "
            "may be inflated (compute threads compete for cores); measure on a quiet machine "
            "or fix threads below the free core count"
        )
