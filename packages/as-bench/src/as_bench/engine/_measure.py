"""One measurement in this process: cold call, warm-up, calibration, sampling, report.

The phases, in order (``setup``, when given, runs untimed before each of them and before
every sampling round):

1. **Cold call**: the first call, timed alone (``cold_start_s``), never a sample.
2. **Warm-up** (:mod:`._warmup`): single calls until the times are stable.
3. **Calibration** (:mod:`._calibrate`): the inner loop for sub-millisecond calls.
4. **Sampling** (:mod:`._sampling`): rounds of latency (and device-time) samples until
   the median's confidence interval is narrow enough or time runs out.

Host memory is sampled by a background thread during the cold call and the warm-up only
(see :mod:`as_bench.devices._host_memory`); device peaks span the whole measurement.

All time is read from the device's clock (:attr:`as_bench.devices.Device.clock`), and the
CPU accounting behind the contention warning from its ``cpu_times()``: a device with a
fake clock (:mod:`as_bench.testing`) runs the whole measurement on fake time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from as_bench.devices import Device
from as_bench.engine._calibrate import Calibration, calibrate
from as_bench.engine._contention import ContentionMeter
from as_bench.engine._sampling import SamplingOutcome, sample
from as_bench.engine._threads import thread_settings, torch_threads
from as_bench.engine._warmup import WarmupOutcome, warm_up
from as_bench.engine.options import MeasureOptions
from as_bench.exceptions import MeasurementError
from as_bench.measurement import Measurement, MemoryReport, TimingSeries
from as_bench.stats import summarize
from as_core.fmt import format_seconds

__all__ = ["InProcessRun", "describe_callable", "format_seconds", "run_measurement"]


def describe_callable(fn: Callable[..., Any]) -> str:
    """A short name for messages: ``module.qualname`` where there is one, else ``repr``."""
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if isinstance(qualname, str):
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    return repr(fn)


def _guarded_setup(setup: Callable[[], Any] | None) -> Callable[[], None] | None:
    if setup is None:
        return None

    def run() -> None:
        try:
            setup()
        except Exception as exc:
            msg = f"setup {describe_callable(setup)} raised {type(exc).__name__}: {exc}"
            raise MeasurementError(msg) from exc

    return run


def _series(label: str, timer: str, samples: list[float], level: float) -> TimingSeries:
    return TimingSeries.model_validate(
        {"label": label, "timer": timer, "samples_s": samples, "stats": summarize(samples, level)}
    )


def _series_warnings(series: TimingSeries, options: MeasureOptions) -> list[str]:
    stats = series.stats
    found = []
    if stats.relative_iqr >= options.noise_rel_iqr:
        found.append(
            f"{series.label}: noisy: the IQR is {stats.relative_iqr:.1%} of the median "
            f"(warning at {options.noise_rel_iqr:.0%}); close other programs, plug in the "
            "power, or fix the CPU frequency"
        )
    # Tukey's fences of a very tight distribution flag samples 1% off the median; only
    # outliers that are also far from the median in relative terms are worth a warning.
    fence_low, fence_high = stats.q1 - 1.5 * stats.iqr, stats.q3 + 1.5 * stats.iqr
    far = options.outlier_min_rel * abs(stats.median)
    count = sum(
        1
        for x in series.samples_s
        if (x < fence_low or x > fence_high) and abs(x - stats.median) > far
    )
    if count >= max(1.0, options.outlier_fraction * stats.n):
        found.append(
            f"{series.label}: {count} of {stats.n} samples ({count / stats.n:.0%}) are "
            f"outliers (beyond Tukey's fences and over {options.outlier_min_rel:.0%} from "
            "the median; kept): something else ran during the measurement"
        )
    return found


def _warnings(
    warm: WarmupOutcome,
    cal: Calibration,
    outcome: SamplingOutcome,
    series: list[TimingSeries],
    options: MeasureOptions,
    threads_applied: bool,
) -> list[str]:
    found: list[str] = []
    if not warm.report.stable:
        diff = (
            f"the medians of the last window's halves differ by {warm.relative_difference:.1%}"
            if warm.relative_difference is not None
            else "too few calls to compare"
        )
        found.append(
            f"warm-up did not stabilise within warmup_max_time_s={options.warmup_max_time_s:g} s "
            f"({diff}; tolerance {options.warmup_tolerance:.0%}): early samples may be slower"
        )
    if cal.overhead_ratio > options.max_overhead_ratio * options.overhead_warn_factor:
        found.append(
            f"timer and synchronisation overhead ({format_seconds(cal.overhead_s)}) is "
            f"{cal.overhead_ratio:.3%} of a sample of {cal.inner_loops} call(s) (target "
            f"{options.max_overhead_ratio:.2%}"
            + (f"; held back by {cal.limited_by}" if cal.limited_by else "")
            + ")"
        )
    if not outcome.converged:
        found.append(f"did not converge: {outcome.stop_reason}")
    for s in series:
        found.extend(_series_warnings(s, options))
    if options.threads is not None and not threads_applied:
        found.append(
            f"threads={options.threads} was recorded but not applied: torch is not imported "
            "and thread pools that already started keep their size; use isolate=True"
        )
    return found


class InProcessRun:
    """One measurement in this process, phase by phase.

    :func:`run_measurement` takes the phases in one go; the interleaved A/B measurement
    (:mod:`as_bench.engine._interleave`) prepares, then samples in slices as its parent
    says, then finishes.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        device: Device,
        options: MeasureOptions,
        setup: Callable[[], Any] | None = None,
        *,
        env_threads_applied: bool = False,
    ) -> None:
        """Bind the function to the device; nothing runs yet."""
        self.device = device
        self.options = options
        self.clock = device.clock
        self.start = self.clock()
        self.name = describe_callable(fn)
        self.loop = device.make_call_loop(fn, args, kwargs)
        self.setup = _guarded_setup(setup)
        self.tracker = (
            device.memory_tracker(options.memory_poll_interval_s)
            if (options.track_memory)
            else None
        )
        self.contention = ContentionMeter(clock=self.clock, cpu_times=device.cpu_times)
        self.env_threads_applied = env_threads_applied
        self.phase = "the cold call"
        self.cold_ns = 0
        self.warm: WarmupOutcome | None = None
        self.cal: Calibration | None = None

    def _wrap(self, exc: Exception) -> MeasurementError:
        msg = (
            f"{self.name} raised {type(exc).__name__}: {exc} "
            f"(during {self.phase} on {self.device.name})"
        )
        return MeasurementError(msg)

    def prepare(self) -> Calibration:
        """The cold call, warm-up and calibration (host memory is tracked from here on)."""
        self.contention.start()
        if self.tracker is not None:  # outside the try: its failures are not the function's
            self.tracker.start()
        try:
            if self.setup is not None:
                self.setup()
            self.cold_ns = self.device.latency_samples(self.loop, 1, 1)[0]
            self.phase = "warm-up"
            if self.setup is not None:
                self.setup()
            self.warm = warm_up(self.device, self.loop, self.options)
            if self.tracker is not None:
                self.tracker.stop_sampling()
            self.phase = "calibration"
            if self.setup is not None:
                self.setup()
            self.cal = calibrate(self.device, self.loop, self.warm.per_call_s, self.options)
        except MeasurementError:
            self.stop_tracking()
            raise
        except Exception as exc:
            self.stop_tracking()
            raise self._wrap(exc) from exc
        self.phase = "sampling"
        return self.cal

    def guard(self, step: Callable[[], SamplingOutcome]) -> SamplingOutcome:
        """Run a sampling step, its exceptions worded like every other phase's."""
        try:
            return step()
        except MeasurementError:
            self.stop_tracking()
            raise
        except Exception as exc:
            self.stop_tracking()
            raise self._wrap(exc) from exc

    def stop_tracking(self) -> None:
        """Stop the host memory sampler (idempotent)."""
        if self.tracker is not None:
            self.tracker.stop_sampling()

    def finish(self, outcome: SamplingOutcome, torch_set: bool) -> Measurement:
        """The measurement from the samples, with its warnings and memory."""
        assert self.warm is not None and self.cal is not None, "prepare() first"
        memory = self.tracker.report() if self.tracker is not None else MemoryReport()
        self.stop_tracking()
        options, device = self.options, self.device
        level = options.ci_level
        latency = _series(device.latency_label, device.latency_timer, outcome.latency_s, level)
        device_time = None
        timer = device.device_series(options.device_timing)
        if outcome.device_s is not None and timer is not None:
            device_time = _series(timer[1], timer[0], outcome.device_s, level)
        series = [latency] if device_time is None else [device_time, latency]
        threads_applied = torch_set or self.env_threads_applied
        found = _warnings(self.warm, self.cal, outcome, series, options, threads_applied)
        busy = self.contention.warning()
        if busy is not None:
            found.append(busy)
        return Measurement(
            device=device.name,
            latency=latency,
            device_time=device_time,
            cold_start_s=self.cold_ns * 1e-9,
            warmup=self.warm.report,
            inner_loops=self.cal.inner_loops,
            converged=outcome.converged,
            stop_reason=outcome.stop_reason,
            total_seconds=(self.clock() - self.start) * 1e-9,
            memory=memory,
            threads=thread_settings(options.threads),
            isolated=False,
            warnings=found,
        )


def run_measurement(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    device: Device,
    options: MeasureOptions,
    setup: Callable[[], Any] | None = None,
    *,
    env_threads_applied: bool = False,
) -> Measurement:
    """Measure ``fn(*args, **kwargs)`` on ``device`` in this process.

    Args:
        fn: The function.
        args: Its positional arguments.
        kwargs: Its keyword arguments.
        device: Where it runs.
        options: How to measure.
        setup: Called untimed before each phase and each sampling round.
        env_threads_applied: The thread environment variables were set for this process
            before it started (an isolated child).

    Raises:
        MeasurementError: ``fn`` or ``setup`` raised; the original is chained.
    """
    run = InProcessRun(
        fn, args, kwargs, device, options, setup, env_threads_applied=env_threads_applied
    )
    with torch_threads(options.threads) as torch_set:
        cal = run.prepare()
        outcome = run.guard(
            lambda: sample(device, run.loop, cal.inner_loops, cal.sample_time_s, options, run.setup)
        )
        return run.finish(outcome, torch_set)
