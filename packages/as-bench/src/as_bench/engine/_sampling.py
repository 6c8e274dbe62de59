"""Sampling with adaptive stopping, latency and device time interleaved round by round.

A *round* is: ``setup()`` (untimed, when given), then a batch of latency samples
(synchronize, clock, ``inner`` calls, synchronize, clock: one synchronisation pair per
sample), then, on devices with an event timer (CUDA, MPS), a batch of as many
device-time samples. Interleaving the two batches round by round means both series see
the same clocks, temperatures and background load.

Device time is taken as ``MeasureOptions.device_timing`` says (see
:data:`as_bench.measurement.DeviceTiming`): ``"batched"`` (back-to-back, the default), a
pair of events per sample around the same ``inner`` calls and one synchronize at the end
of the batch, so the GPU runs back to back with no host round trip between samples, as a
stream of calls does in production; ``"per_call"``, a pair of events around each call and
a synchronize after it, so each call starts on an idle GPU as a synchronised call does.

After every round the *primary* series (device time where there is one, else latency) is
checked. Sampling stops when, with at least ``min_samples`` samples and ``min_time_s``
seconds of sampling, the wider side of the median's ``ci_level`` confidence interval is
within ``target_rel_ci`` of the median (*converged*); or at ``max_samples``; or once
``max_time_s`` seconds have passed (not converged). ``min_samples`` is honoured even
past ``max_time_s``. A round lasts about ``batch_time_s`` (at most ``batch_size``
samples per series), so the checks are frequent without costing much.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from as_bench.devices import CallLoop, Device
from as_bench.engine.options import MeasureOptions
from as_bench.stats import Stats, summarize

__all__ = ["SamplingOutcome", "sample"]


@dataclass(frozen=True)
class SamplingOutcome:
    """The samples and why sampling stopped.

    Attributes:
        latency_s: Latency per call, one value per sample, in order.
        device_s: Device time per call, one value per sample; ``None`` without events.
        converged: Whether the primary series met the CI target.
        stop_reason: Why sampling stopped, in words.
        seconds: Wall time of the sampling phase.
        rounds: Rounds taken (``setup`` was called once per round).
    """

    latency_s: list[float]
    device_s: list[float] | None
    converged: bool
    stop_reason: str
    seconds: float
    rounds: int


class _Rounds:
    """The samples taken so far and how long a sample lasts."""

    def __init__(
        self,
        device: Device,
        loop: CallLoop,
        inner: int,
        sample_time_s: float,
        use_events: bool,
        per_call: bool = False,
    ) -> None:
        self.device = device
        self.loop = loop
        self.inner = inner
        self.use_events = use_events
        self.device_samples = (
            device.per_call_device_time_samples if per_call else device.device_time_samples
        )
        self.latency_ns: list[int] = []
        self.device_s: list[float] = []
        self.per_sample_s = max(sample_time_s, 1e-9)
        self.rounds = 0
        self.clock = device.clock
        self.start = self.clock()

    @property
    def n(self) -> int:
        """Samples of the primary series."""
        return len(self.device_s) if self.use_events else len(self.latency_ns)

    def elapsed(self) -> float:
        return (self.clock() - self.start) * 1e-9

    def size(self, options: MeasureOptions) -> int:
        """Samples per series in the next round."""
        k = max(1, min(options.batch_size, math.floor(options.batch_time_s / self.per_sample_s)))
        if self.n >= options.min_samples:  # only the time limit is left to respect
            remaining = options.max_time_s - self.elapsed()
            k = max(1, min(k, math.ceil(remaining / self.per_sample_s)))
        if options.max_samples is not None:
            k = max(1, min(k, options.max_samples - self.n))
        return k

    def take(self, k: int) -> None:
        """One round: ``k`` latency samples, then ``k`` device-time samples."""
        t0 = self.clock()
        self.latency_ns.extend(self.device.latency_samples(self.loop, self.inner, k))
        if self.use_events:
            got = self.device_samples(self.loop, self.inner, k)
            if got is None:  # pragma: no cover - a device that declares events has them
                self.use_events = False
            else:
                self.device_s.extend(got)
        self.rounds += 1
        taken = 2 * k if self.use_events else k
        self.per_sample_s = max((self.clock() - t0) * 1e-9 / taken, 1e-9)

    def primary_stats(self, options: MeasureOptions) -> Stats:
        """Statistics of the primary series, per call."""
        if self.use_events:
            values = np.asarray(self.device_s, dtype=np.float64) / self.inner
        else:
            values = np.asarray(self.latency_ns, dtype=np.float64) * (1e-9 / self.inner)
        return summarize(values, options.ci_level)

    def outcome(self, converged: bool, reason: str) -> SamplingOutcome:
        scale = 1e-9 / self.inner
        return SamplingOutcome(
            latency_s=[v * scale for v in self.latency_ns],
            device_s=[v / self.inner for v in self.device_s] if self.use_events else None,
            converged=converged,
            stop_reason=reason,
            seconds=self.elapsed(),
            rounds=self.rounds,
        )


def _ci_text(stats: Stats, options: MeasureOptions) -> str:
    return (
        f"the {options.ci_level:.0%} CI of the median is ±{stats.ci_halfwidth_relative:.2%} "
        f"(target ±{options.target_rel_ci:.2%})"
    )


def _verdict(rounds: _Rounds, options: MeasureOptions) -> tuple[bool, str] | None:
    """``(converged, reason)`` when sampling should stop, else ``None``."""
    n, elapsed = rounds.n, rounds.elapsed()
    if n < options.min_samples:
        return None
    at_max_samples = options.max_samples is not None and n >= options.max_samples
    at_max_time = elapsed >= options.max_time_s
    if elapsed < options.min_time_s and not at_max_samples:
        return None
    stats = rounds.primary_stats(options)
    if elapsed >= options.min_time_s and stats.ci_halfwidth_relative <= options.target_rel_ci:
        return True, f"converged: {_ci_text(stats, options)} after {n} samples in {elapsed:.2f} s"
    if at_max_samples:
        return False, (
            f"sample limit: max_samples={options.max_samples} reached in {elapsed:.2f} s; "
            f"{_ci_text(stats, options)}"
        )
    if at_max_time:
        return False, (
            f"time limit: max_time_s={options.max_time_s:g} reached after {n} samples; "
            f"{_ci_text(stats, options)}"
        )
    return None


def sample(
    device: Device,
    loop: CallLoop,
    inner: int,
    sample_time_s: float,
    options: MeasureOptions,
    setup: Callable[[], Any] | None = None,
) -> SamplingOutcome:
    """Take rounds of samples of ``inner`` calls until the stopping rule says stop.

    Time (the limits, the size of a round) is read from ``device.clock``.

    Args:
        device: Where the calls run.
        loop: The call loop.
        inner: Calls per sample.
        sample_time_s: Expected duration of one sample (sizes the first round).
        options: Stopping rule and round sizes.
        setup: Called before every round, untimed.
    """
    timing = options.device_timing
    use_events = options.device_time and device.device_series(timing) is not None
    rounds = _Rounds(device, loop, inner, sample_time_s, use_events, timing == "per_call")
    while True:
        k = rounds.size(options)
        if setup is not None:
            setup()
        rounds.take(k)
        verdict = _verdict(rounds, options)
        if verdict is not None:
            return rounds.outcome(*verdict)
