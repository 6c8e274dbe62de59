"""The Device contract: availability, synchronisation, per-sample timers and memory.

A :class:`Device` is what the engine times a function on. It hides the four ways of
knowing that a call has finished and how long it took:

- **cpu**: the call returns when it is done; the clock around it.
- **cuda**: kernels are queued; device time from a pair of CUDA events per sample with
  one synchronize at the end of a batch of samples (back-to-back, the default) or from a
  pair around each synchronised call (per call), latency from
  synchronize / clock / calls / synchronize / clock.
- **mps**: likewise with ``torch.mps.event.Event`` and ``torch.mps.synchronize``.
- **mlx**: arrays are lazy; every call's outputs are evaluated (``mx.eval``) inside the
  timed region, then ``mx.synchronize()``.

Timed regions hold nothing but the clock reads, the synchronisations and one call of a
*call loop* (:func:`make_call_loop`): ``for _ in repeat(None, n): fn(*args, **kwargs)``.

The clock is the device's :attr:`Device.clock` (``time.perf_counter_ns`` unless one is
given), and the engine reads all its time from it: a device with a fake clock
(:mod:`as_bench.testing`) makes a whole measurement run on fake time.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, ClassVar, Literal

from as_bench.devices._clock import Clock, CpuTimes, read_cpu_times
from as_bench.devices._host_memory import MemoryTracker
from as_bench.exceptions import DeviceUnavailableError
from as_bench.measurement import DeviceTiming, TimerKind

__all__ = ["CallLoop", "Device", "DeviceKind", "InvalidDeviceSpecError", "make_call_loop"]

DeviceKind = Literal["cpu", "cuda", "mps", "mlx"]
CallLoop = Callable[[int], None]
"""``loop(n)`` makes ``n`` complete calls of the measured function and returns nothing."""

VALID_FORMS = '"cpu", "cuda", "cuda:N" (N = 0, 1, ...), "mps", "mlx"'


class InvalidDeviceSpecError(DeviceUnavailableError, ValueError):
    """A device string that names no device as-bench knows (``"gpu"``, ``"cuda:x"``).

    It is a :class:`DeviceUnavailableError` (so ``except AsBenchError`` catches it) and a
    :class:`ValueError` (the argument is malformed).
    """

    def __init__(self, spec: object) -> None:
        """Say what was given and which forms are valid."""
        self.spec = spec
        super().__init__(f"invalid device {spec!r}: valid forms are {VALID_FORMS}")


def make_call_loop(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    finish: Callable[[Any], Any] | None = None,
) -> CallLoop:
    """Build ``loop(n)``: ``n`` calls of ``fn(*args, **kwargs)`` with the least overhead.

    The loop is specialised on whether there are arguments, so a timed region pays for
    nothing but the calls (``itertools.repeat`` is the cheapest Python loop; timeit uses
    it too).

    Args:
        fn: The function to call.
        args: Positional arguments, bound once.
        kwargs: Keyword arguments, bound once.
        finish: Applied to every call's result inside the loop when the call is not
            complete on return (MLX: ``mx.eval``); ``None`` when it is.
    """
    a = tuple(args)
    kw = dict(kwargs or {})
    if finish is not None:
        return _finishing_loop(fn, a, kw, finish)
    return _plain_loop(fn, a, kw)


def _plain_loop(fn: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]) -> CallLoop:
    if kw:

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                fn(*a, **kw)

    elif a:

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                fn(*a)

    else:

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                fn()

    return loop


def _finishing_loop(
    fn: Callable[..., Any],
    a: tuple[Any, ...],
    kw: dict[str, Any],
    finish: Callable[[Any], Any],
) -> CallLoop:
    if kw:

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                finish(fn(*a, **kw))

    else:

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                finish(fn(*a))

    return loop


class Device(ABC):
    """A place to run and time a function: ``cpu``, ``cuda:N``, ``mps`` or ``mlx``.

    Get one with :func:`as_bench.devices.get_device`. Subclasses set the class
    attributes and implement availability, synchronisation and memory; timers have
    working defaults built on :meth:`synchronize`.

    Attributes:
        kind: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"mlx"``.
        asynchronous: Whether a call may return before the work is done.
        latency_timer: How :meth:`latency_samples` times (a ``TimingSeries.timer`` value).
        latency_label: The label of latency series, for people.
        device_timer: How :meth:`device_time_samples` times (back-to-back); ``None``
            when the device has no event timer (CPU, MLX).
        device_label: The label of back-to-back device-time series; ``None`` without an
            event timer.
        per_call_device_timer: How :meth:`per_call_device_time_samples` times; ``None``
            when the device cannot time single calls on the device.
        per_call_device_label: The label of per-call device-time series.
        extra: The as-bench extra that provides the library the device needs.
    """

    kind: ClassVar[DeviceKind]
    asynchronous: ClassVar[bool] = False
    latency_timer: ClassVar[TimerKind] = "sync_clock"
    latency_label: ClassVar[str] = "latency (synchronised wall clock)"
    device_timer: ClassVar[TimerKind | None] = None
    device_label: ClassVar[str | None] = None
    per_call_device_timer: ClassVar[TimerKind | None] = None
    per_call_device_label: ClassVar[str | None] = None
    extra: ClassVar[str | None] = None
    _clock: Clock | None = None

    @property
    def clock(self) -> Clock:
        """The clock that times samples, and the engine's phases: integer nanoseconds.

        ``time.perf_counter_ns`` unless another was set (a fake in tests, see
        :mod:`as_bench.testing`). Isolated measurements (``isolate=True``) need the
        default: the child process recreates the device from its name.
        """
        return self._clock if self._clock is not None else time.perf_counter_ns

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock

    @property
    def has_default_clock(self) -> bool:
        """Whether :attr:`clock` is ``time.perf_counter_ns`` (no other clock was set)."""
        return self._clock is None or self._clock is time.perf_counter_ns

    def cpu_times(self) -> CpuTimes | None:
        """CPU time used so far by the machine and by this process (``None``: unknown).

        The engine compares two readings to warn when other processes competed for the
        CPUs while it measured. The kernel's accounting (psutil) by default; a fake
        device reports fake CPU time that matches its fake clock.
        """
        return read_cpu_times()

    @property
    def name(self) -> str:
        """The normalised device string: ``"cpu"``, ``"cuda:0"``, ``"mps"``, ``"mlx"``."""
        return self.kind

    def __repr__(self) -> str:
        """``Device('cuda:0')``."""
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        """Devices are equal when their names are."""
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self) -> int:
        """Hash of the name."""
        return hash(self.name)

    # -- availability ----------------------------------------------------------------

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """Why this kind of device cannot be used here, or ``None`` when it can.

        Cheap: never imports a library that is not installed.
        """

    @classmethod
    def is_available(cls) -> bool:
        """Whether this kind of device can be used on this machine (cheap)."""
        return cls.unavailable_reason() is None

    # -- running and timing ------------------------------------------------------------

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until all work queued on the device has finished (no-op on the CPU)."""

    def make_call_loop(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> CallLoop:
        """``loop(n)`` making ``n`` complete calls of ``fn`` on this device.

        "Complete" means what a caller who needs the result waits for, short of the
        final synchronisation: MLX evaluates every call's lazy outputs here.
        """
        return make_call_loop(fn, args, kwargs)

    def latency_samples(self, loop: CallLoop, inner: int, count: int) -> list[int]:
        """End-to-end samples: ``sync, clock, (call, sync) x inner, clock``.

        On an asynchronous device every call is followed by its own synchronize, so a
        sample divided by ``inner`` is the latency of one synchronised call (what a
        caller that needs the result waits for), not the throughput of back-to-back
        launches; the inner loop only spreads the clock reads' cost over ``inner`` calls.
        On a synchronous device the calls run back to back.

        Args:
            loop: From :meth:`make_call_loop`.
            inner: Calls per sample.
            count: Samples to take.

        Returns:
            ``count`` durations in nanoseconds, each for ``inner`` calls.
        """
        sync = self.synchronize
        clock = self.clock
        body = loop
        if self.asynchronous and inner > 1:

            def body(n: int) -> None:
                for _ in repeat(None, n):
                    loop(1)
                    sync()

        out = [0] * count
        for i in range(count):
            sync()
            t0 = clock()
            body(inner)
            sync()
            out[i] = clock() - t0
        return out

    def device_time_samples(self, loop: CallLoop, inner: int, count: int) -> list[float] | None:
        """Device-time samples from events: a pair per sample, one synchronize per batch.

        Args:
            loop: From :meth:`make_call_loop`.
            inner: Calls per sample.
            count: Samples to take.

        Returns:
            ``count`` durations in seconds, each for ``inner`` calls; ``None`` when the
            device has no event timer.
        """
        return None

    def per_call_device_time_samples(
        self, loop: CallLoop, inner: int, count: int
    ) -> list[float] | None:
        """Device-time samples from an event pair around each synchronised call.

        The device is synchronised first; then, per sample, for each of the ``inner``
        calls: record a start event, make the call, record an end event, synchronize,
        and add the pair's span. The GPU starts every call idle, as a caller that waits
        for each result sees it, so a span holds the call's kernels and the gaps in
        which the GPU waited for the host (see :data:`~as_bench.measurement.DeviceTiming`).

        Args:
            loop: From :meth:`make_call_loop`.
            inner: Calls per sample.
            count: Samples to take.

        Returns:
            ``count`` durations in seconds, each the sum of ``inner`` calls' spans;
            ``None`` when the device cannot time single calls.
        """
        return None

    def device_series(self, timing: DeviceTiming = "batched") -> tuple[TimerKind, str] | None:
        """The timer kind and label of device-time series taken with ``timing``.

        ``None`` when the device has no event timer for that timing (CPU, MLX).
        """
        if timing == "per_call":
            timer, label = self.per_call_device_timer, self.per_call_device_label
        else:
            timer, label = self.device_timer, self.device_label
        if timer is None:
            return None
        return timer, label or "device time"

    def timer_overhead_ns(self, loop: CallLoop, repeats: int = 51) -> float:
        """Median cost of an empty latency sample: clock reads, syncs and ``loop(0)``.

        This is what every latency sample pays on top of its calls; calibration sizes the
        inner loop so that it stays a small fraction of a sample.
        """
        samples = sorted(self.latency_samples(loop, 0, repeats))
        return float(samples[len(samples) // 2])

    # -- memory ------------------------------------------------------------------------

    def memory_tracker(self, poll_interval_s: float = 0.002) -> MemoryTracker:
        """A tracker of host RSS (and this device's memory) for one measurement."""
        return MemoryTracker(
            poll_interval_s=poll_interval_s,
            reset_device=self.reset_peak_memory,
            poll_device=self.poll_memory if self.needs_memory_polling else None,
            read_device=self.device_memory,
        )

    needs_memory_polling: ClassVar[bool] = False
    """Whether device memory must be polled (no peak counter of its own: MPS)."""

    def reset_peak_memory(self) -> None:
        """Start a new peak of device memory (no-op without device memory)."""
        return None

    def poll_memory(self) -> None:
        """Read device memory once and fold it into the peak (devices without counters)."""
        return None

    def device_memory(self) -> dict[str, int | None]:
        """Device memory since :meth:`reset_peak_memory`.

        Returns:
            ``device_peak_allocated_bytes``, ``device_peak_reserved_bytes`` and
            ``device_budget_bytes`` (``None`` where the device cannot tell), the
            corresponding :class:`~as_bench.measurement.MemoryReport` fields.
        """
        return {
            "device_peak_allocated_bytes": None,
            "device_peak_reserved_bytes": None,
            "device_budget_bytes": None,
        }

    # -- facts ---------------------------------------------------------------------------

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Facts about the device for results: its name, library versions, memory."""
