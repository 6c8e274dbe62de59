"""Calibration: how many calls one sample makes (the inner loop).

Every latency sample pays for two clock reads, two synchronisations and one call of the
call loop; this *overhead* is measured on the device (the median of empty samples). A
call of at least ``calibrate_below_s`` (1 ms) is timed one call per sample. A shorter one
gets an inner loop of ``n`` calls, with ``n`` chosen, as torch.utils.benchmark does, so
that ``overhead / sample time <= max_overhead_ratio`` (1e-4 = 0.01%), unless a sample
would then last more than ``max_sample_time_s`` or take more than ``max_inner_loops``
calls; the ratio reached is recorded either way. ``n`` is refined with real samples of
``n`` calls (at most a few), since a single-call time overstates a fast call by the
overhead it carries.

Samples are not corrected for the overhead: at 0.01% it is below the noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from as_bench.devices import CallLoop, Device
from as_bench.engine.options import MeasureOptions

__all__ = ["Calibration", "calibrate"]

_REFINEMENTS = 4


@dataclass(frozen=True)
class Calibration:
    """The inner loop and what it was chosen from.

    Attributes:
        inner_loops: Calls per sample.
        overhead_s: Timer and synchronisation overhead of one sample.
        per_call_s: Estimated time of one call (overhead removed).
        sample_time_s: Expected duration of one sample (``inner_loops * per_call_s``).
        overhead_ratio: ``overhead_s / sample_time_s``.
        limited_by: The option that kept the inner loop from reaching the overhead target
            (``"max_sample_time_s"``, ``"max_inner_loops"``); ``None`` otherwise, and for
            calls timed one per sample or with ``inner_loops`` fixed.
    """

    inner_loops: int
    overhead_s: float
    per_call_s: float
    sample_time_s: float
    overhead_ratio: float
    limited_by: str | None


def _per_call(device: Device, loop: CallLoop, n: int, overhead_ns: float, count: int) -> float:
    sample_ns = statistics.median(device.latency_samples(loop, n, count))
    return max((sample_ns - overhead_ns) / n, 1.0) * 1e-9  # at least 1 ns per call


def calibrate(
    device: Device, loop: CallLoop, warm_call_s: float, options: MeasureOptions
) -> Calibration:
    """Choose the inner loop for ``loop`` on ``device``.

    Args:
        device: Where the calls run.
        loop: The call loop.
        warm_call_s: Time of one warm call with its overhead, from warm-up.
        options: The limits (see the module docstring).
    """
    overhead_ns = device.timer_overhead_ns(loop)
    overhead_s = overhead_ns * 1e-9
    per_call = max(warm_call_s - overhead_s, 1e-9)

    def result(n: int, per_call_s: float, limited_by: str | None) -> Calibration:
        sample = n * per_call_s
        return Calibration(n, overhead_s, per_call_s, sample, overhead_s / sample, limited_by)

    if options.inner_loops is not None:
        return result(options.inner_loops, per_call, None)
    if per_call >= options.calibrate_below_s:
        return result(1, per_call, None)

    target = overhead_s / options.max_overhead_ratio
    limited_by: str | None = None
    if target > options.max_sample_time_s:
        target, limited_by = options.max_sample_time_s, "max_sample_time_s"
    count = 3 if target < 0.01 else 1
    n = 1
    for _ in range(_REFINEMENTS):
        wanted = max(1, math.ceil(target / per_call))
        if wanted > options.max_inner_loops:
            wanted, limited_by = options.max_inner_loops, "max_inner_loops"
        if wanted <= n:
            break
        n = wanted
        per_call = _per_call(device, loop, n, overhead_ns, count)
    # The last refinement may show calls slower than thought: keep samples under the cap.
    n = max(1, min(n, math.floor(options.max_sample_time_s / per_call)))
    ratio_ok = overhead_s / (n * per_call) <= options.max_overhead_ratio
    return result(n, per_call, None if ratio_ok else limited_by)
