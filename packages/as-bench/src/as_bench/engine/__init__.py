"""The measurement engine: ``measure(fn, *args, device=..., options=...) -> Measurement``.

Warm-up as its own phase (cold call reported apart), inner loops calibrated for
sub-millisecond calls, adaptive stopping on the confidence interval of the median,
device events and synchronised latency on asynchronous devices, optional isolation in a
spawned process, and interleaved A/B measurement of two checkouts of the same code
(:func:`measure_interleaved`). Nothing here imports torch or mlx; devices import them when used.
"""

from __future__ import annotations

from as_bench.engine._dispatch import measure
from as_bench.engine._interleave import (
    DEFAULT_PAIRS,
    BaseSourceError,
    InterleavedPair,
    base_sys_path,
    measure_interleaved,
)
from as_bench.engine.options import MeasureOptions

__all__ = [
    "DEFAULT_PAIRS",
    "BaseSourceError",
    "InterleavedPair",
    "MeasureOptions",
    "base_sys_path",
    "measure",
    "measure_interleaved",
]
