"""How much CPU other processes took while we measured.

On a shared or small machine, other processes competing for the cores inflate timings
(and a multi-threaded runtime that spins on its worker threads suffers most), yet the
samples can look perfectly stable. The measurement cannot fix that, but it can say so:
we compare the whole machine's busy CPU time with our own process's over the measurement.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

__all__ = ["ContentionMeter"]

# Warn when others used at least this many cores on average, and at least this fraction
# of the machine: a background daemon waking now and then is not worth a warning.
_MIN_CORES = 0.3
_MIN_FRACTION = 0.2


def _system_busy_s() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times) - idle)


def _own_busy_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class ContentionMeter:
    """Start it before measuring; :meth:`warning` afterwards says whether others competed."""

    _process: psutil.Process | None = None
    _wall: float = 0.0
    _system: float = 0.0
    _own: float = 0.0

    def start(self) -> None:
        """Take the starting readings."""
        try:
            self._process = psutil.Process(os.getpid())
            self._system = _system_busy_s()
            self._own = _own_busy_s(self._process)
        except (psutil.Error, OSError):  # containers may hide /proc/stat: then say nothing
            self._process = None
        self._wall = time.perf_counter()

    def others_cores(self) -> float | None:
        """Average number of cores other processes kept busy since :meth:`start`."""
        if self._process is None:
            return None
        wall = time.perf_counter() - self._wall
        if wall <= 0.05:  # too short for the kernel's tick-based accounting to mean much
            return None
        try:
            system = _system_busy_s() - self._system
            own = _own_busy_s(self._process) - self._own
        except (psutil.Error, OSError):
            return None
        return max(0.0, (system - own) / wall)

    def warning(self) -> str | None:
        """A warning in words when other processes competed for the CPUs, else ``None``."""
        cores = self.others_cores()
        count = psutil.cpu_count() or 1
        if cores is None or cores < max(_MIN_CORES, _MIN_FRACTION * count):
            return None
        return (
            f"other processes kept {cores:.1f} of {count} CPUs busy while measuring: timings "
            "may be inflated (compute threads compete for cores); measure on a quiet machine "
            "or fix threads below the free core count"
        )
