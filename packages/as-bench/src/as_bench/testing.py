"""Test doubles for code that uses as-bench: a fake clock, fake devices, result builders.

Timing tests that read the real clock fail on a busy machine: a 10 µs call reads 25 µs
when another process takes the core. With these doubles the engine runs unchanged, on
fake time, so what it decides (the inner loop, warm-up stability, when sampling stops and
why, which warnings it gives) is exact and repeatable:

>>> from as_bench import measure, MeasureOptions
>>> from as_bench.testing import FakeDevice
>>> m = measure(lambda: None, device=FakeDevice(cost_s=10e-6), options=MeasureOptions.quick())
>>> m.inner_loops, round(m.latency.stats.median * 1e9)
(50, 10001)

A read of the fake clock costs 50 ns by default, about what a real one costs, so the
timer's overhead is in every sample as it is on a real clock: calibration sizes the inner
loop to keep it at 0.01% of a sample (50 ns / 1e-4 = 500 µs = 50 calls), and a sample of
50 calls reads 500.05 µs, 10.001 µs per call.

For code that compares, gates, reports or plots results, the builders make valid
:class:`~as_bench.results.BenchmarkResult` and :class:`~as_bench.measurement.Measurement`
records with the samples (or the median) a test needs, no measuring involved:

>>> from as_bench.testing import lognormal_samples, make_result
>>> r = make_result("mlp/torch/cpu/bs1", lognormal_samples(2e-4, n=100))
>>> round(r.median_s, 9)
0.0002

Nothing here is imported by ``import as_bench``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, ClassVar

import numpy as np

from as_bench.devices import CallLoop, CpuTimes, Device, DeviceKind
from as_bench.measurement import Measurement, TimerKind, TimingSeries, WarmupReport
from as_bench.results import BenchmarkResult
from as_bench.stats import summarize

__all__ = [
    "FakeClock",
    "FakeDevice",
    "FakeEventDevice",
    "lognormal_samples",
    "make_measurement",
    "make_result",
    "make_series",
]

CLOCK_READ_NS = 50
"""What one read of a :class:`FakeDevice`'s default clock costs: about a real one's."""

_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _to_ns(seconds: float) -> int:
    ns = round(seconds * 1e9)
    if ns < 0:
        msg = f"fake time cannot go backwards: got {seconds!r} s"
        raise ValueError(msg)
    return ns


class FakeClock:
    """A clock that moves only when told to: by :meth:`advance`, and by each read.

    It is an :class:`~as_bench.devices.Clock`: calling it returns integer nanoseconds.
    Give it to a device (``CpuDevice(clock=...)``, ``FakeDevice(clock=...)``) and the
    device's samples and the engine's phases all run on it.

    >>> clock = FakeClock(step_ns=50)
    >>> clock(), clock()
    (0, 50)
    >>> clock.advance(1e-6)
    >>> clock()
    1100

    Args:
        start_ns: The first reading.
        step_ns: How far every read moves the clock (what reading a clock costs); 0 for a
            clock that moves only by :meth:`advance`.

    Attributes:
        step_ns: How far every read moves the clock.
        reads: How many times the clock was read.
    """

    def __init__(self, start_ns: int = 0, *, step_ns: int = 0) -> None:
        """Start the clock at ``start_ns``."""
        if step_ns < 0:
            msg = f"step_ns must be at least 0, got {step_ns!r}"
            raise ValueError(msg)
        self._now_ns = int(start_ns)
        self.step_ns = step_ns
        self.reads = 0

    def __call__(self) -> int:
        """Read the clock: the current time in nanoseconds; then move it by ``step_ns``."""
        now = self._now_ns
        self._now_ns += self.step_ns
        self.reads += 1
        return now

    def __repr__(self) -> str:
        """``FakeClock(now_ns=1100, step_ns=50)``."""
        return f"FakeClock(now_ns={self._now_ns}, step_ns={self.step_ns})"

    @property
    def now_ns(self) -> int:
        """The time now, in nanoseconds, without reading (and so moving) the clock."""
        return self._now_ns

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (rounded to the nanosecond).

        A function measured on the clock "takes" what it advances; a fake ``sleep``.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        self._now_ns += _to_ns(seconds)

    def advance_ns(self, ns: int) -> None:
        """Move the clock forward by ``ns`` nanoseconds.

        Raises:
            ValueError: ``ns`` is negative.
        """
        if ns < 0:
            msg = f"fake time cannot go backwards: got {ns!r} ns"
            raise ValueError(msg)
        self._now_ns += ns


Cost = float | Callable[[int], float]
"""Seconds one call costs: a constant, or a function of the call's index (0 = first)."""


class FakeDevice(Device):
    """A CPU-like device on a :class:`FakeClock`: each call costs programmed fake time.

    The measured function really runs (its results, side effects and exceptions are
    real); after each call the device moves the clock by that call's cost. The engine
    then times, warms up, calibrates and stops exactly as on a real device, on time that
    nothing else on the machine can disturb. Pass it as ``measure(..., device=...)`` or
    to the pytest fixture, ``as_bench(fn, device=...)``. Not with ``isolate=True``: a
    fresh process cannot share the fake clock (``measure`` says so).

    >>> device = FakeDevice(cost_s=lambda i: 0.05 if i == 0 else 1e-3)  # slow first call

    Contention: the device reports CPU accounting that matches its clock: this process
    keeps one core busy, and other processes ``others_cores`` more on average, so the
    engine's warning about competing processes can be tested exactly.

    Its name is ``"cpu"``, so its measurements and results look like the CPU's.

    Args:
        cost_s: Seconds each call costs: a constant, or a function of the call's index
            (0 is the first call the device makes: the engine's cold call). A function
            that advances the clock itself may use 0.
        clock: The clock; a new ``FakeClock(step_ns=50)`` (a read costs 50 ns, about what
            ``perf_counter_ns`` costs) when ``None``.
        sync_s: Seconds each :meth:`synchronize` costs (asynchronous subclasses).
        others_cores: Cores other processes keep busy on average, for the contention
            warning.
        cpu_count: The machine's logical CPUs, for the contention warning.

    Attributes:
        fake_clock: The fake clock (also :attr:`clock`).
        calls: Calls made so far.
        busy_ns: Fake time the calls cost so far (clock reads and syncs not included).
        syncs: Synchronisations so far.
        requests: What the engine asked for, in order: ``("latency", count)`` per batch of
            latency samples (``("device", count)`` per batch of back-to-back device-time
            samples on :class:`FakeEventDevice`, ``("device_per_call", count)`` per batch
            of per-call ones).
        others_cores: As the argument; may be changed between measurements.
    """

    kind: ClassVar[DeviceKind] = "cpu"
    asynchronous: ClassVar[bool] = False
    latency_timer: ClassVar[TimerKind] = "perf_counter"
    latency_label: ClassVar[str] = "wall clock (fake clock)"

    def __init__(
        self,
        cost_s: Cost = 0.0,
        *,
        clock: FakeClock | None = None,
        sync_s: float = 0.0,
        others_cores: float = 0.0,
        cpu_count: int = 2,
    ) -> None:
        """Build the device (see the class docstring for the arguments)."""
        self.fake_clock = clock if clock is not None else FakeClock(step_ns=CLOCK_READ_NS)
        self.clock = self.fake_clock
        self._cost = cost_s
        self._sync_ns = _to_ns(sync_s)
        self.others_cores = others_cores
        self._cpu_count = cpu_count
        self._born_ns = self.fake_clock.now_ns
        self.calls = 0
        self.busy_ns = 0
        self.syncs = 0
        self.requests: list[tuple[str, int]] = []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Never: a fake device is always available."""
        return None

    def _call_ns(self) -> int:
        cost = self._cost
        seconds = cost(self.calls) if callable(cost) else cost
        self.calls += 1
        return _to_ns(seconds)

    def make_call_loop(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> CallLoop:
        """``loop(n)``: ``n`` real calls of ``fn``, each moving the clock by its cost."""
        a = tuple(args)
        kw = dict(kwargs or {})
        clock = self.fake_clock

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                fn(*a, **kw)
                ns = self._call_ns()
                self.busy_ns += ns
                clock.advance_ns(ns)

        return loop

    def synchronize(self) -> None:
        """Count the synchronisation and move the clock by ``sync_s``."""
        self.syncs += 1
        self.fake_clock.advance_ns(self._sync_ns)

    def latency_samples(self, loop: CallLoop, inner: int, count: int) -> list[int]:
        """The generic protocol (:meth:`Device.latency_samples`) on the fake clock, logged."""
        self.requests.append(("latency", count))
        return super().latency_samples(loop, inner, count)

    def cpu_times(self) -> CpuTimes:
        """Fake CPU accounting since the device was made: one core ours, ``others_cores`` not."""
        wall = (self.fake_clock.now_ns - self._born_ns) * 1e-9
        return CpuTimes(
            machine_busy_s=wall * (1.0 + self.others_cores),
            own_busy_s=wall,
            cpu_count=self._cpu_count,
        )

    def describe(self) -> dict[str, Any]:
        """Says it is a fake."""
        return {"kind": self.kind, "name": "fake device (as_bench.testing)", "fake": True}


class FakeEventDevice(FakeDevice):
    """A :class:`FakeDevice` that behaves like a GPU: asynchronous, with an event timer.

    Latency samples synchronise after every call (as on CUDA and MPS); device-time
    samples are the calls' costs alone (no clock reads, no synchronisations): back to
    back, with one synchronisation per batch, as CUDA events give by default, or, with
    ``MeasureOptions(device_timing="per_call")``, one call at a time with a
    synchronisation after each. Use ``sync_s`` to make latency exceed device time.

    ``launch_s`` models a launch-bound call: a call made on an idle device (the first
    after a synchronisation) costs ``launch_s`` more, as a GPU that waits for the host's
    first launch does. Latency and per-call device time pay it on every call; back-to-back
    device time once per batch, as on a real GPU whose queue stays fed.

    Args:
        cost_s: As :class:`FakeDevice`.
        launch_s: Extra seconds of a call made on an idle device.
        clock: As :class:`FakeDevice`.
        sync_s: As :class:`FakeDevice`.
        others_cores: As :class:`FakeDevice`.
        cpu_count: As :class:`FakeDevice`.
    """

    asynchronous: ClassVar[bool] = True
    latency_timer: ClassVar[TimerKind] = "sync_clock"
    latency_label: ClassVar[str] = "latency (synchronised wall clock)"
    device_timer: ClassVar[TimerKind | None] = "cuda_events"
    device_label: ClassVar[str | None] = "device time, back-to-back (fake events)"
    per_call_device_timer: ClassVar[TimerKind | None] = "cuda_events_per_call"
    per_call_device_label: ClassVar[str | None] = "device time, per call (fake events)"

    def __init__(
        self,
        cost_s: Cost = 0.0,
        *,
        launch_s: float = 0.0,
        clock: FakeClock | None = None,
        sync_s: float = 0.0,
        others_cores: float = 0.0,
        cpu_count: int = 2,
    ) -> None:
        """Build the device (see the class docstring for the arguments)."""
        super().__init__(
            cost_s, clock=clock, sync_s=sync_s, others_cores=others_cores, cpu_count=cpu_count
        )
        self._launch_ns = _to_ns(launch_s)
        self._idle = True

    def _call_ns(self) -> int:
        ns = super()._call_ns()
        if self._idle:
            self._idle = False
            ns += self._launch_ns
        return ns

    def synchronize(self) -> None:
        """As :meth:`FakeDevice.synchronize`; the device is idle afterwards."""
        super().synchronize()
        self._idle = True

    def device_time_samples(self, loop: CallLoop, inner: int, count: int) -> list[float] | None:
        """``count`` samples of ``inner`` calls back to back: their fake cost, logged."""
        self.requests.append(("device", count))
        out = []
        for _ in range(count):
            before = self.busy_ns
            loop(inner)
            out.append((self.busy_ns - before) * 1e-9)
        self.synchronize()  # one per batch, as CUDA and MPS do
        return out

    def per_call_device_time_samples(
        self, loop: CallLoop, inner: int, count: int
    ) -> list[float] | None:
        """``count`` samples of ``inner`` synchronised calls: their fake cost, logged."""
        self.requests.append(("device_per_call", count))
        self.synchronize()
        out = []
        for _ in range(count):
            total = 0
            for _ in range(inner):
                before = self.busy_ns
                loop(1)
                self.synchronize()  # one per call: the next call starts on an idle device
                total += self.busy_ns - before
            out.append(total * 1e-9)
        return out


# ----------------------------------------------------------------------------- builders


def lognormal_samples(
    median_s: float, n: int = 200, *, sigma: float = 0.05, seed: int = 0
) -> list[float]:
    """``n`` positive samples, lognormal with spread ``sigma``, whose median is ``median_s``.

    The samples are scaled so that their median is ``median_s`` (to rounding), whatever
    the seed; the same seed gives the same samples.

    Args:
        median_s: The median of the samples, seconds.
        n: How many samples.
        sigma: Standard deviation of their logarithm (0.05: about ±5%).
        seed: Seed of the random generator.

    Raises:
        ValueError: ``median_s`` is not positive or ``n`` < 1.
    """
    if median_s <= 0 or n < 1:
        msg = f"need median_s > 0 and n >= 1, got median_s={median_s!r}, n={n!r}"
        raise ValueError(msg)
    raw = np.random.default_rng(seed).lognormal(0.0, sigma, n)
    return [float(x) for x in raw * (median_s / float(np.median(raw)))]


def make_series(
    samples_s: Sequence[float],
    *,
    label: str = "wall clock (perf_counter_ns)",
    timer: TimerKind = "perf_counter",
    ci_level: float = 0.95,
) -> TimingSeries:
    """A :class:`~as_bench.measurement.TimingSeries` of these samples with their statistics.

    Args:
        samples_s: Seconds per call (at least two).
        label: The series' label.
        timer: How the samples were "taken".
        ci_level: Confidence level of the statistics.
    """
    samples = [float(x) for x in samples_s]
    return TimingSeries(
        label=label, timer=timer, samples_s=samples, stats=summarize(samples, ci_level)
    )


def make_measurement(
    samples_s: Sequence[float],
    *,
    device_samples_s: Sequence[float] | None = None,
    device: str = "cpu",
    inner_loops: int = 1,
    converged: bool = True,
    stop_reason: str = "converged (built by as_bench.testing)",
    cold_start_s: float | None = None,
    warmup: WarmupReport | None = None,
    threads: Mapping[str, int | str | None] | None = None,
    warnings: Sequence[str] = (),
) -> Measurement:
    """A valid :class:`~as_bench.measurement.Measurement` with these latency samples.

    Args:
        samples_s: Latency, seconds per call (at least two).
        device_samples_s: Device time, seconds per call (then labelled CUDA events);
            ``None`` for a CPU-like measurement with latency only.
        device: The device string.
        inner_loops: Calls per sample.
        converged: Whether sampling converged.
        stop_reason: Why sampling stopped.
        cold_start_s: The first call's time; the slowest sample when ``None``.
        warmup: The warm-up report; a stable 5-call warm-up when ``None``.
        threads: Thread settings; none recorded when ``None``.
        warnings: The measurement's warnings.
    """
    latency = make_series(samples_s)
    device_time = None
    if device_samples_s is not None:
        device_time = make_series(
            device_samples_s,
            label="device time, back-to-back (CUDA events)",
            timer="cuda_events",
        )
    if warmup is None:
        warmup = WarmupReport(iterations=5, seconds=0.01, stable=True)
    return Measurement(
        device=device,
        latency=latency,
        device_time=device_time,
        cold_start_s=cold_start_s if cold_start_s is not None else max(latency.samples_s),
        warmup=warmup,
        inner_loops=inner_loops,
        converged=converged,
        stop_reason=stop_reason,
        total_seconds=warmup.seconds + sum(latency.samples_s) * inner_loops,
        threads=dict(threads or {}),
        warnings=list(warnings),
    )


def make_result(
    benchmark: str,
    samples_s: Sequence[float] | None = None,
    *,
    median_s: float | None = None,
    device_samples_s: Sequence[float] | None = None,
    measurement: Measurement | None = None,
    workload: str | None = None,
    backend: str = "python",
    device: str = "cpu",
    batch_size: int = 1,
    hardware: Mapping[str, Any] | None = None,
    threads: Mapping[str, int | str | None] | None = None,
    started_at: datetime | None = None,
    duration_s: float = 1.0,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> BenchmarkResult:
    """A valid :class:`~as_bench.results.BenchmarkResult` for compare, gate and report tests.

    Give the latency as ``samples_s``, or as ``median_s`` (then 200
    :func:`lognormal_samples` with that median, ±5%), or a whole ``measurement``.

    Args:
        benchmark: The benchmark's name, e.g. ``"mlp/torch/cpu/bs1"``.
        samples_s: Latency samples, seconds per call.
        median_s: The median latency, when ``samples_s`` is not given.
        device_samples_s: Device-time samples (see :func:`make_measurement`).
        measurement: The measurement itself, instead of samples.
        workload: The workload's name; the part of ``benchmark`` before the first ``/``
            when ``None``.
        backend: The backend's name.
        device: The device string (of the result and of a built measurement).
        batch_size: Items per call.
        hardware: The hardware record; empty when ``None``.
        threads: Thread settings of a built measurement.
        started_at: When it started; 2025-01-01 00:00 UTC when ``None``.
        duration_s: Seconds from start to finish.
        params: Parameters of the run.
        tags: Free labels.

    Raises:
        ValueError: Not exactly one of ``samples_s``, ``median_s`` and ``measurement``.
    """
    given = [x for x in (samples_s, median_s, measurement) if x is not None]
    msg = "make_result needs exactly one of samples_s, median_s and measurement"
    if len(given) != 1:
        raise ValueError(msg)
    if measurement is None:
        if samples_s is None:
            if median_s is None:  # pragma: no cover - ruled out above
                raise ValueError(msg)
            samples_s = lognormal_samples(median_s)
        measurement = make_measurement(
            samples_s, device_samples_s=device_samples_s, device=device, threads=threads
        )
    start = started_at if started_at is not None else _T0
    return BenchmarkResult(
        benchmark=benchmark,
        workload=workload if workload is not None else benchmark.split("/")[0],
        backend=backend,
        device=device,
        batch_size=batch_size,
        measurement=measurement,
        hardware=dict(hardware or {}),
        started_at=start,
        finished_at=start + timedelta(seconds=duration_s),
        params=dict(params or {}),
        tags=dict(tags or {}),
    )
