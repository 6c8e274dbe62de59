"""Apple GPUs through PyTorch's MPS backend: MPS events for device time, synchronised clock.

Device time, back-to-back (the default): a pair of
``torch.mps.event.Event(enable_timing=True)`` per sample, recorded on the MPS stream
around the sample's calls, one ``torch.mps.synchronize()`` at the end of the batch, then
``elapsed_time`` (milliseconds). Device time, per call
(``MeasureOptions(device_timing="per_call")``): synchronize, then for each call a pair
around that call alone and a synchronize, the pair read at once. Latency: synchronize, clock, calls,
synchronize, clock. Memory: MPS keeps no peak counter, so ``current_allocated_memory``
(tensors) and ``driver_allocated_memory`` (everything Metal holds for the process, caches
included) are polled by the memory tracker's thread and their maxima reported;
``recommended_max_memory`` (Metal's recommended working set, the unified-memory budget)
is the budget.
"""

from __future__ import annotations

import platform
from typing import Any, ClassVar

from as_bench.devices._base import CallLoop, Device, DeviceKind
from as_bench.devices._events import back_to_back_times, per_call_times
from as_bench.devices._torch import TORCH_MISSING, load_torch, torch_if_installed
from as_bench.exceptions import DeviceUnavailableError
from as_bench.measurement import TimerKind

__all__ = ["MpsDevice"]


class MpsDevice(Device):
    """The Apple GPU through ``torch.backends.mps`` (macOS on Apple Silicon).

    Raises:
        DeviceUnavailableError: Not macOS, torch missing, or MPS not available.
    """

    kind: ClassVar[DeviceKind] = "mps"
    asynchronous: ClassVar[bool] = True
    latency_timer: ClassVar[TimerKind] = "sync_clock"
    latency_label: ClassVar[str] = "latency (synchronised wall clock)"
    device_timer: ClassVar[TimerKind | None] = "mps_events"
    device_label: ClassVar[str | None] = "device time, back-to-back (MPS events)"
    per_call_device_timer: ClassVar[TimerKind | None] = "mps_events_per_call"
    per_call_device_label: ClassVar[str | None] = "device time, per call (MPS events)"
    extra: ClassVar[str | None] = "torch"
    needs_memory_polling: ClassVar[bool] = True

    def __init__(self) -> None:
        """Check that MPS can be used here."""
        reason = self.unavailable_reason()
        if reason is not None:
            msg = f"mps is not available: {reason}"
            raise DeviceUnavailableError(msg)
        self._torch = load_torch()
        self._events: list[tuple[Any, Any]] = []
        self._peak_allocated = 0
        self._peak_driver = 0

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` when ``torch.backends.mps.is_available()``; else why not."""
        if platform.system() != "Darwin":  # not sys.platform: mypy would prune the rest
            return f"MPS needs macOS on Apple Silicon; this is {platform.system()}"
        torch = torch_if_installed()
        if torch is None:
            return TORCH_MISSING
        if not torch.backends.mps.is_available():
            if not torch.backends.mps.is_built():
                return (
                    f"torch.backends.mps.is_built() is False: torch {torch.__version__} has no MPS"
                )
            return (
                "torch.backends.mps.is_available() is False: MPS needs Apple Silicon "
                "and macOS 12.3 or later"
            )
        return None

    def synchronize(self) -> None:
        """``torch.mps.synchronize()``: wait for all MPS work."""
        self._torch.mps.synchronize()

    def _event_pairs(self, count: int) -> list[tuple[Any, Any]]:
        event = self._torch.mps.event.Event
        while len(self._events) < count:
            self._events.append((event(enable_timing=True), event(enable_timing=True)))
        return self._events[:count]

    def device_time_samples(self, loop: CallLoop, inner: int, count: int) -> list[float] | None:
        """A pair of MPS events per sample (back-to-back); one synchronize per batch."""
        return back_to_back_times(self._event_pairs(count), loop, inner, self.synchronize)

    def per_call_device_time_samples(
        self, loop: CallLoop, inner: int, count: int
    ) -> list[float] | None:
        """A pair of MPS events around each call, each call on an idle GPU (synchronised)."""
        (pair,) = self._event_pairs(1)
        return per_call_times(pair, loop, inner, count, self.synchronize)

    def reset_peak_memory(self) -> None:
        """Start the polled peaks from the current allocation."""
        mps = self._torch.mps
        self._peak_allocated = int(mps.current_allocated_memory())
        self._peak_driver = int(mps.driver_allocated_memory())

    def poll_memory(self) -> None:
        """Fold the current and driver allocations into the peaks."""
        mps = self._torch.mps
        self._peak_allocated = max(self._peak_allocated, int(mps.current_allocated_memory()))
        self._peak_driver = max(self._peak_driver, int(mps.driver_allocated_memory()))

    def device_memory(self) -> dict[str, int | None]:
        """Polled peaks of allocated and driver memory; ``recommended_max_memory``."""
        self.poll_memory()
        return {
            "device_peak_allocated_bytes": self._peak_allocated,
            "device_peak_reserved_bytes": self._peak_driver,
            "device_budget_bytes": int(self._torch.mps.recommended_max_memory()),
        }

    def describe(self) -> dict[str, Any]:
        """The macOS version, chip, torch version and the recommended memory budget."""
        torch = self._torch
        return {
            "kind": "mps",
            "name": "Apple GPU (MPS)",
            "chip": platform.processor() or platform.machine(),
            "macos": platform.mac_ver()[0],
            "torch": str(torch.__version__),
            "recommended_max_memory_bytes": int(torch.mps.recommended_max_memory()),
        }
