"""How memory is named and written in tables: ``as-bench run``, the report, the plot.

One benchmark's memory is what loading its model and running it added to the process's
RSS (:attr:`~as_bench.measurement.MemoryReport.model_memory_bytes`); the device's peak
allocation (CUDA, MPS, MLX) stands beside it. Results recorded before the runner measured
that (or measured outside it) have only the process's peak RSS, which depends on what ran
before in the process: it is shown, labelled as such, never under the model's heading.
"""

from __future__ import annotations

from typing import Final

from as_bench.measurement import MemoryReport
from as_core.fmt import format_bytes

__all__ = [
    "DEVICE_PEAK_HEADING",
    "MODEL_MEMORY_HEADING",
    "POLLUTED_MARK",
    "POLLUTED_NOTE",
    "device_peak_cell",
    "model_memory_cell",
]

MODEL_MEMORY_HEADING: Final = "model+inference memory (RSS Δ)"
"""Peak RSS from before the model loaded to the end of warm-up, minus the RSS before."""

DEVICE_PEAK_HEADING: Final = "device peak"
"""The device's peak allocation while measuring (CUDA/MPS/MLX allocated)."""

POLLUTED_MARK: Final = "≥"
POLLUTED_NOTE: Final = (
    f"{POLLUTED_MARK} a lower bound: measured after other benchmarks in the same process, "
    "whose freed memory the process kept and may have reused, and whose libraries were "
    "already loaded; as-bench run --isolate measures each benchmark in a fresh process"
)
_PROCESS_PEAK = "process peak RSS"


def model_memory_cell(memory: MemoryReport) -> str:
    """The model+inference memory, marked when polluted; the process peak, labelled, if not.

    ``"12.3 MiB"``, ``"≥12.3 MiB"`` (see :data:`POLLUTED_NOTE`), ``"process peak RSS
    1.1 GiB"`` for a result without a before-load baseline, ``"-"`` without either.
    """
    delta = memory.model_memory_bytes
    if delta is not None:
        mark = POLLUTED_MARK if memory.host_memory_polluted else ""
        return f"{mark}{format_bytes(delta)}"
    if memory.host_peak_rss_bytes is not None:
        return f"{_PROCESS_PEAK} {format_bytes(memory.host_peak_rss_bytes)}"
    return "-"


def device_peak_cell(memory: MemoryReport) -> str:
    """The device's peak allocation, with its share of the device's budget where known."""
    peak = memory.device_peak_allocated_bytes
    if peak is None:
        return "-"
    budget = memory.device_budget_bytes
    share = f" ({peak / budget * 100:.1f}% of budget)" if budget else ""
    return f"{format_bytes(peak)}{share}"
