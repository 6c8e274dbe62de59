"""NVIDIA GPUs through PyTorch: CUDA events for device time, synchronised clock for latency.

Device time, back-to-back (the default): a pair of ``torch.cuda.Event(enable_timing=True)``
per sample, recorded on the current stream of the device around the sample's calls, and
one ``torch.cuda.synchronize`` at the end of the batch before the pairs are read
(``elapsed_time``, milliseconds, resolution about 0.5 µs). Device time, per call
(``MeasureOptions(device_timing="per_call")``): synchronize, then for each call a pair
around that call alone and a synchronize, the pair read at once. Work the function queues
on other streams is outside the events. Latency: synchronize, clock, calls, synchronize,
clock. Memory: ``torch.cuda.reset_peak_memory_stats`` at the start,
``max_memory_allocated``/``max_memory_reserved`` at the end, the card's total memory as
the budget.
"""

from __future__ import annotations

from typing import Any, ClassVar

from as_bench.devices._base import CallLoop, Device, DeviceKind
from as_bench.devices._events import back_to_back_times, per_call_times
from as_bench.devices._torch import TORCH_MISSING, load_torch, torch_if_installed
from as_bench.exceptions import DeviceUnavailableError
from as_bench.measurement import TimerKind

__all__ = ["CudaDevice"]


class CudaDevice(Device):
    """One CUDA device, ``cuda:N``.

    Args:
        index: The device ordinal among the visible CUDA devices.

    Raises:
        DeviceUnavailableError: torch is missing, has no CUDA, or ``index`` is out of range.
    """

    kind: ClassVar[DeviceKind] = "cuda"
    asynchronous: ClassVar[bool] = True
    latency_timer: ClassVar[TimerKind] = "sync_clock"
    latency_label: ClassVar[str] = "latency (synchronised wall clock)"
    device_timer: ClassVar[TimerKind | None] = "cuda_events"
    device_label: ClassVar[str | None] = "device time, back-to-back (CUDA events)"
    per_call_device_timer: ClassVar[TimerKind | None] = "cuda_events_per_call"
    per_call_device_label: ClassVar[str | None] = "device time, per call (CUDA events)"
    extra: ClassVar[str | None] = "torch"

    def __init__(self, index: int = 0) -> None:
        """Check that ``cuda:index`` exists here."""
        if index < 0:
            msg = f"cuda:{index}: the device index must be 0 or more"
            raise DeviceUnavailableError(msg)
        reason = self.unavailable_reason()
        if reason is not None:
            msg = f"cuda:{index} is not available: {reason}"
            raise DeviceUnavailableError(msg)
        self._torch = load_torch()
        count = int(self._torch.cuda.device_count())
        if index >= count:
            msg = (
                f"cuda:{index} does not exist: torch sees {count} CUDA device(s)"
                f" (cuda:0 to cuda:{count - 1}); CUDA_VISIBLE_DEVICES narrows that list"
            )
            raise DeviceUnavailableError(msg)
        self.index = index
        self._events: list[tuple[Any, Any]] = []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` when ``torch.cuda.is_available()``; else what is missing."""
        torch = torch_if_installed()
        if torch is None:
            return TORCH_MISSING
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                return (
                    f"torch.cuda.is_available() is False: torch {torch.__version__} "
                    "is built without CUDA"
                )
            return "torch.cuda.is_available() is False: no NVIDIA GPU or driver is visible"
        return None

    @classmethod
    def device_count(cls) -> int:
        """How many CUDA devices torch sees (0 when unavailable)."""
        if cls.unavailable_reason() is not None:
            return 0
        return int(load_torch().cuda.device_count())

    @property
    def name(self) -> str:
        """``"cuda:N"``."""
        return f"cuda:{self.index}"

    def synchronize(self) -> None:
        """``torch.cuda.synchronize(index)``: wait for every stream of this device."""
        self._torch.cuda.synchronize(self.index)

    def latency_samples(self, loop: CallLoop, inner: int, count: int) -> list[int]:
        """Synchronised wall-clock samples with this device current."""
        with self._torch.cuda.device(self.index):
            return super().latency_samples(loop, inner, count)

    def _event_pairs(self, count: int) -> list[tuple[Any, Any]]:
        event = self._torch.cuda.Event
        while len(self._events) < count:
            self._events.append((event(enable_timing=True), event(enable_timing=True)))
        return self._events[:count]

    def device_time_samples(self, loop: CallLoop, inner: int, count: int) -> list[float] | None:
        """A pair of CUDA events per sample (back-to-back); one synchronize per batch."""
        with self._torch.cuda.device(self.index):
            return back_to_back_times(self._event_pairs(count), loop, inner, self.synchronize)

    def per_call_device_time_samples(
        self, loop: CallLoop, inner: int, count: int
    ) -> list[float] | None:
        """A pair of CUDA events around each call, each call on an idle GPU (synchronised)."""
        with self._torch.cuda.device(self.index):
            (pair,) = self._event_pairs(1)
            return per_call_times(pair, loop, inner, count, self.synchronize)

    def reset_peak_memory(self) -> None:
        """``torch.cuda.reset_peak_memory_stats``."""
        self._torch.cuda.reset_peak_memory_stats(self.index)

    def device_memory(self) -> dict[str, int | None]:
        """Peak allocated and reserved since the reset; the card's total memory."""
        cuda = self._torch.cuda
        return {
            "device_peak_allocated_bytes": int(cuda.max_memory_allocated(self.index)),
            "device_peak_reserved_bytes": int(cuda.max_memory_reserved(self.index)),
            "device_budget_bytes": int(cuda.get_device_properties(self.index).total_memory),
        }

    def describe(self) -> dict[str, Any]:
        """GPU name, compute capability, memory, SM count, torch and CUDA versions."""
        torch = self._torch
        props = torch.cuda.get_device_properties(self.index)
        cudnn = torch.backends.cudnn
        return {
            "kind": "cuda",
            "index": self.index,
            "name": str(props.name),
            "compute_capability": f"{props.major}.{props.minor}",
            "total_memory_bytes": int(props.total_memory),
            "multi_processor_count": int(props.multi_processor_count),
            "torch": str(torch.__version__),
            "cuda_runtime": torch.version.cuda,
            "cudnn": cudnn.version() if cudnn.is_available() else None,
        }
