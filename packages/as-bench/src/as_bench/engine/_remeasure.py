"""Re-measuring a noisy measurement: fresh processes, more samples (``remeasure_noisy``).

A measurement whose primary series spreads widely (IQR at least ``noise_rel_iqr`` of the
median) was taken on a busy machine: other processes held the CPU in the middle of some
samples. Before anyone decides on such numbers, :func:`remeasure` measures again, up to
``options.remeasure_noisy`` times, each attempt in a fresh process when the function can
be sent to one (a new interpreter: another address-space layout, allocator state and
place in the scheduler) and in this process otherwise.

- The first attempt that comes back quiet is the result: its median is usable as it is,
  and pooling it with noisy samples would only widen it. The noisy attempts before it are
  dropped, and a warning says so.
- When every attempt is noisy, their samples are pooled into one measurement: more
  samples, from several processes, for the comparison's busy-machine rule (the lower
  decile, see :mod:`as_bench.compare`) to work on.

Either way :attr:`~as_bench.measurement.Measurement.attempts` says how many measurements
were taken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from as_bench.engine.options import MeasureOptions
from as_bench.exceptions import MeasurementError
from as_bench.measurement import Measurement, MemoryReport, TimingSeries
from as_bench.stats import summarize

__all__ = ["is_noisy", "pool", "remeasure", "spread"]

logger = logging.getLogger(__name__)

Attempt = Callable[[bool], Measurement]
"""Takes one more measurement; the argument says whether in a fresh process."""


def is_noisy(measurement: Measurement, options: MeasureOptions) -> bool:
    """Whether the primary series spreads at least ``options.noise_rel_iqr``."""
    return measurement.primary.stats.relative_iqr >= options.noise_rel_iqr


def _spread(measurement: Measurement) -> str:
    return f"{measurement.primary.stats.relative_iqr:.0%}"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _pooled_series(
    series: list[TimingSeries | None], options: MeasureOptions
) -> TimingSeries | None:
    if any(s is None for s in series):
        return None
    present = [s for s in series if s is not None]
    if len({(s.timer, s.label) for s in present}) != 1:
        return None
    samples = [value for s in present for value in s.samples_s]
    first = present[0]
    return TimingSeries(
        label=first.label,
        timer=first.timer,
        samples_s=samples,
        stats=summarize(samples, options.ci_level),
    )


def _peak(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def pool(attempts: list[Measurement], options: MeasureOptions, note: str) -> Measurement:
    """One measurement holding the samples of every attempt, in order.

    The cold start, warm-up, inner-loop count and thread settings are the first
    attempt's; memory peaks are the highest seen; ``note`` is added to the warnings.
    """
    first = attempts[0]
    latency = _pooled_series([m.latency for m in attempts], options)
    assert latency is not None  # every measurement has a latency series
    device_time = _pooled_series([m.device_time for m in attempts], options)
    primary = device_time if device_time is not None else latency
    converged = primary.stats.ci_halfwidth_relative <= options.target_rel_ci
    memory = MemoryReport(
        host_peak_rss_bytes=_peak([m.memory.host_peak_rss_bytes for m in attempts]),
        host_baseline_rss_bytes=first.memory.host_baseline_rss_bytes,
        device_peak_allocated_bytes=_peak([m.memory.device_peak_allocated_bytes for m in attempts]),
        device_peak_reserved_bytes=_peak([m.memory.device_peak_reserved_bytes for m in attempts]),
        device_budget_bytes=first.memory.device_budget_bytes,
    )
    return first.model_copy(
        update={
            "latency": latency,
            "device_time": device_time,
            "converged": converged,
            "stop_reason": f"{note}; the pooled median's CI is "
            f"±{primary.stats.ci_halfwidth_relative:.2%} after {len(primary.samples_s)} samples",
            "total_seconds": sum(m.total_seconds for m in attempts),
            "memory": memory,
            "isolated": all(m.isolated for m in attempts),
            "warnings": _unique([w for m in attempts for w in m.warnings] + [note]),
            "attempts": sum(m.attempts for m in attempts),
        }
    )


def _again(attempt: Attempt, fresh: bool) -> tuple[Measurement, bool]:
    """One more measurement, fresh when asked and possible; and whether fresh stays on."""
    if fresh:
        try:
            return attempt(True), True
        except MeasurementError as exc:
            logger.info("measuring in this process: no fresh process possible: %s", exc)
    return attempt(False), False


def spread(
    first: Measurement, attempt: Attempt, options: MeasureOptions, *, fresh: bool
) -> Measurement:
    """``first`` pooled with ``options.processes - 1`` more measurements.

    The others are taken in fresh processes where possible: the samples of several
    processes, for the spread between them.
    """
    attempts = [first]
    for _ in range(options.processes - 1):
        again, fresh = _again(attempt, fresh)
        attempts.append(again)
    in_fresh = sum(1 for m in attempts if m.isolated)
    note = (
        f"measured {len(attempts)} times ({in_fresh} in fresh processes) and pooled "
        "(MeasureOptions.processes)"
    )
    return pool(attempts, options, note)


def remeasure(
    first: Measurement, attempt: Attempt, options: MeasureOptions, *, fresh: bool
) -> Measurement:
    """Measure again while noisy (see the module docstring); ``first`` is noisy.

    Args:
        first: The noisy first measurement.
        attempt: Takes one more measurement, in a fresh process when given ``True``.
        options: ``remeasure_noisy`` (how many more at most) and ``noise_rel_iqr``.
        fresh: Whether to try fresh processes; the first attempt that cannot be sent to
            one (a function that does not pickle, or that the child cannot import) turns
            them off, and that attempt and the rest are taken in this process.
    """
    attempts = [first]
    why = (
        f"re-measured: the first attempt's IQR was {_spread(first)} of its median (at least "
        f"{options.noise_rel_iqr:.0%}: a busy machine)"
    )
    for _ in range(options.remeasure_noisy):
        again, fresh = _again(attempt, fresh)
        attempts.append(again)
        if not is_noisy(again, options):
            where = "in a fresh process" if again.isolated else "in this process"
            note = (
                f"{why}; attempt {len(attempts)}, {where}, was quiet (IQR {_spread(again)}) "
                f"and is the result; {len(attempts) - 1} noisy attempt(s) dropped"
            )
            return again.model_copy(
                update={
                    "warnings": _unique([*again.warnings, note]),
                    "total_seconds": sum(m.total_seconds for m in attempts),
                    "attempts": sum(m.attempts for m in attempts),
                }
            )
    in_fresh = sum(1 for m in attempts if m.isolated)
    note = (
        f"{why}; all {len(attempts)} attempts ({in_fresh} in fresh processes) were noisy "
        f"(IQRs {', '.join(_spread(m) for m in attempts)}): their samples are pooled"
    )
    return pool(attempts, options, note)
