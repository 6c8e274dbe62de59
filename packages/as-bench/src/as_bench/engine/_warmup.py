"""Warm-up: run the function until its times settle, apart from the measured samples.

After the cold call (timed on its own and reported as ``cold_start_s``), warm-up times
single synchronised calls. It may end once it has made ``warmup_min_iters`` calls *and*
lasted ``warmup_min_time_s``; it ends when the function is stable, in the spirit of
pyperf's warm-up calibration: the medians of the first and second halves of the last
``warmup_window`` calls differ by at most ``warmup_tolerance`` (relative to the second,
the more recent). A function still unstable at ``warmup_max_time_s`` ends warm-up with
``stable=False`` (the engine turns that into a warning).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from as_bench.devices import CallLoop, Device
from as_bench.engine.options import MeasureOptions
from as_bench.measurement import WarmupReport

__all__ = ["WarmupOutcome", "warm_up"]

# Single-call samples are taken in chunks of about this many seconds between two
# stability checks, so that a fast function is not checked after every call.
_CHECK_EVERY_S = 0.002
_MAX_CHUNK = 1000


@dataclass(frozen=True)
class WarmupOutcome:
    """What warm-up found.

    Attributes:
        report: The record kept in the measurement.
        per_call_s: Median time of one warm call with its timer overhead (the second
            half of the last window), the starting point of calibration.
        relative_difference: ``|m1 - m2| / m2`` of the last check (``None`` if none ran).
    """

    report: WarmupReport
    per_call_s: float
    relative_difference: float | None


def _halves(window: deque[int]) -> tuple[float, float]:
    half = len(window) // 2
    values = list(window)
    return statistics.median(values[:half]), statistics.median(values[-half:])


def warm_up(device: Device, loop: CallLoop, options: MeasureOptions) -> WarmupOutcome:
    """Warm ``loop`` up on ``device`` (see the module docstring for the rule).

    At least one call is made, whatever the options. Time is read from ``device.clock``.
    """
    window: deque[int] = deque(maxlen=options.warmup_window)
    calls = 0
    chunk = 1
    stable = False
    m1: float | None = None
    m2: float | None = None
    rel: float | None = None
    clock = device.clock
    start = clock()
    while True:
        samples = device.latency_samples(loop, 1, chunk)
        window.extend(samples)
        calls += chunk
        elapsed = (clock() - start) * 1e-9
        if calls >= options.warmup_min_iters and elapsed >= options.warmup_min_time_s:
            if len(window) >= 2:
                m1, m2 = _halves(window)
                rel = abs(m1 - m2) / m2 if m2 > 0 else (0.0 if m1 == m2 else float("inf"))
                if rel <= options.warmup_tolerance:
                    stable = True
                    break
            if elapsed >= options.warmup_max_time_s:
                break
        typical = statistics.median(samples) * 1e-9
        fits = int(_CHECK_EVERY_S / typical) if typical > 0 else _MAX_CHUNK
        chunk = max(1, min(_MAX_CHUNK, fits))
    seconds = (clock() - start) * 1e-9
    if m2 is None:  # never checked (a single slow call): that call is the estimate
        m2 = float(window[-1])
    report = WarmupReport(
        iterations=calls,
        seconds=seconds,
        stable=stable,
        first_half_median_s=m1 * 1e-9 if m1 is not None else None,
        second_half_median_s=m2 * 1e-9,
    )
    return WarmupOutcome(report=report, per_call_s=m2 * 1e-9, relative_difference=rel)
