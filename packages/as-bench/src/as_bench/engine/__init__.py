"""The measurement engine: ``measure(fn, *args, device=..., options=...) -> Measurement``.

Warm-up as its own phase (cold call reported apart), inner loops calibrated for
sub-millisecond calls, adaptive stopping on the confidence interval of the median,
device events and synchronised latency on asynchronous devices, optional isolation in a
spawned process. Nothing here imports torch or mlx; devices import them when used.
"""

from __future__ import annotations

from as_bench.engine._dispatch import measure
from as_bench.engine.options import MeasureOptions

__all__ = ["MeasureOptions", "measure"]
