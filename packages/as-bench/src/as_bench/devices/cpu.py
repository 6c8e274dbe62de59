"""The CPU: calls are complete on return, timed with ``time.perf_counter_ns`` by default."""

from __future__ import annotations

import os
import platform
from typing import Any, ClassVar

import psutil

from as_bench.devices._base import CallLoop, Device, DeviceKind
from as_bench.devices._clock import Clock
from as_bench.measurement import TimerKind

__all__ = ["CpuDevice"]


class CpuDevice(Device):
    """The host CPU (always available)."""

    kind: ClassVar[DeviceKind] = "cpu"
    asynchronous: ClassVar[bool] = False
    latency_timer: ClassVar[TimerKind] = "perf_counter"
    latency_label: ClassVar[str] = "wall clock (perf_counter_ns)"

    def __init__(self, *, clock: Clock | None = None) -> None:
        """The CPU, timed with ``clock`` (``time.perf_counter_ns`` when ``None``).

        Args:
            clock: Another clock, e.g. :class:`as_bench.testing.FakeClock` in tests.
        """
        if clock is not None:
            self.clock = clock

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Never: there is always a CPU."""
        return None

    def synchronize(self) -> None:
        """Nothing to wait for: CPU calls are complete when they return."""

    def latency_samples(self, loop: CallLoop, inner: int, count: int) -> list[int]:
        """``clock, loop(inner), clock`` per sample; no synchronisation to pay for."""
        clock = self.clock
        out = [0] * count
        for i in range(count):
            t0 = clock()
            loop(inner)
            out[i] = clock() - t0
        return out

    def describe(self) -> dict[str, Any]:
        """Processor, architecture and core counts."""
        try:
            affinity: int | None = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS has no sched_getaffinity
            affinity = None
        return {
            "kind": "cpu",
            "name": platform.processor() or platform.machine(),
            "machine": platform.machine(),
            "system": platform.system(),
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": affinity,
        }
