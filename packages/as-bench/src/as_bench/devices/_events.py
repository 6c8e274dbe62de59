"""Device-time sampling with event pairs, the same on every device that has them.

CUDA and MPS both time the device with pairs of events (``record()`` on the stream,
``elapsed_time(other)`` in milliseconds once both have completed). Only how events are
made and how the device is synchronised differ, so the two ways of sampling live here
once, and each device passes its events and its ``synchronize``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from as_bench.devices._base import CallLoop

__all__ = ["back_to_back_times", "per_call_times"]


def back_to_back_times(
    pairs: Sequence[tuple[Any, Any]], loop: CallLoop, inner: int, synchronize: Callable[[], None]
) -> list[float]:
    """Seconds per sample, each sample ``inner`` calls queued back to back.

    One event pair around each sample's calls; one synchronize for the whole batch.
    """
    for start, end in pairs:
        start.record()
        loop(inner)
        end.record()
    synchronize()
    return [start.elapsed_time(end) * 1e-3 for start, end in pairs]


def per_call_times(
    pair: tuple[Any, Any],
    loop: CallLoop,
    inner: int,
    count: int,
    synchronize: Callable[[], None],
) -> list[float]:
    """Seconds per sample, ``count`` samples of ``inner`` calls each timed on its own.

    Each call sits between its own events and is followed by a synchronize, so that the
    next one starts on an idle device.
    """
    start, end = pair
    out = [0.0] * count
    synchronize()
    for i in range(count):
        total_ms = 0.0
        for _ in range(inner):
            start.record()
            loop(1)
            end.record()
            synchronize()
            total_ms += start.elapsed_time(end)
        out[i] = total_ms * 1e-3
    return out
