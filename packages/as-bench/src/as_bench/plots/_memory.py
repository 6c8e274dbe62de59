"""Memory per benchmark: model+inference RSS increase and device peak, a panel per workload.

A solid bar is what loading the model and running it added to the process's RSS
(:attr:`~as_bench.measurement.MemoryReport.model_memory_bytes`), labelled ``≥`` when it
is a lower bound (other benchmarks ran before it in the same process). A result without
that reading (older, or measured outside ``as-bench run``) is drawn dotted, as the
measuring process's peak RSS, and says so: it counts whatever ran before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from as_bench._memory_text import POLLUTED_MARK
from as_bench.plots._data import by_workload
from as_bench.plots._files import draw
from as_bench.plots._style import (
    LOWER_IS_BETTER,
    backend_color,
    backend_handles,
    figure_with_panels,
    note,
    scale_bytes,
)
from as_bench.results import BenchmarkResult
from as_core.fmt import format_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["build_memory", "has_memory", "plot_memory"]

_DEVICE_HATCH = "////"
_PROCESS_HATCH = "...."
TITLE = "Model + inference memory (RSS increase from before loading) and device peak"


def _host(result: BenchmarkResult) -> int | None:
    """The model+inference RSS increase, or the process peak where that was not recorded."""
    memory = result.measurement.memory
    delta = memory.model_memory_bytes
    return delta if delta is not None else memory.host_peak_rss_bytes


def _is_process_peak(result: BenchmarkResult) -> bool:
    memory = result.measurement.memory
    return memory.model_memory_bytes is None and memory.host_peak_rss_bytes is not None


def _is_lower_bound(result: BenchmarkResult) -> bool:
    memory = result.measurement.memory
    return memory.model_memory_bytes is not None and bool(memory.host_memory_polluted)


def _device(result: BenchmarkResult) -> int | None:
    return result.measurement.memory.device_peak_allocated_bytes


def has_memory(results: Sequence[BenchmarkResult]) -> bool:
    """Whether any result recorded a host or device peak."""
    return any(_host(r) is not None or _device(r) is not None for r in results)


def _bars(
    ax: Axes,
    x: np.ndarray,
    values: list[int | None],
    results: list[BenchmarkResult],
    scale: float,
    *,
    device: bool,
) -> None:
    heights = [0.0 if v is None else v / scale for v in values]
    colors = [backend_color(r.backend) for r in results]
    bars = ax.bar(
        x,
        heights,
        width=0.38,
        color=colors,
        edgecolor="#333333",
        hatch=_DEVICE_HATCH if device else "",
        alpha=0.6 if device else 0.9,
    )
    labels = [format_bytes(v, missing="n/a") for v in values]
    if not device:
        for i, (bar, result) in enumerate(zip(bars, results, strict=True)):
            if _is_process_peak(result):
                bar.set_hatch(_PROCESS_HATCH)
                labels[i] = f"process {labels[i]}"
            elif _is_lower_bound(result):
                labels[i] = f"{POLLUTED_MARK}{labels[i]}"
    ax.bar_label(bars, labels=labels, fontsize=6, rotation=90, padding=2)


def _panel(ax: Axes, workload: str, results: list[BenchmarkResult]) -> None:
    from matplotlib.patches import Patch

    host = [_host(r) for r in results]
    device = [_device(r) for r in results]
    ax.set_title(f"{workload}: memory per benchmark")
    if not has_memory(results):
        note(ax, "no peak memory recorded for this workload", where="center")
        return
    scale, unit = scale_bytes([float(v) for v in host + device if v is not None])
    x = np.arange(len(results), dtype=float)
    any_device = any(v is not None for v in device)
    offset = 0.2 if any_device else 0.0
    _bars(ax, x - offset, host, results, scale, device=False)
    if any_device:
        _bars(ax, x + offset, device, results, scale, device=True)
    ax.set_xticks(x, [f"{r.backend}\n{r.device} bs{r.batch_size}" for r in results])
    ax.set_ylabel(f"memory ({unit}; {LOWER_IS_BETTER})")
    # Room above the tallest bar for its label.
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
    kinds = []
    if any(not _is_process_peak(r) and _host(r) is not None for r in results):
        label = "model+inference (RSS increase)"
        if any(_is_lower_bound(r) for r in results):
            label += (
                f"; {POLLUTED_MARK} lower bound: other\nbenchmarks ran before it in the process"
            )
        kinds.append(Patch(facecolor="#BBBBBB", edgecolor="#333333", label=label))
    if any(_is_process_peak(r) for r in results):
        kinds.append(
            Patch(
                facecolor="#BBBBBB",
                edgecolor="#333333",
                hatch=_PROCESS_HATCH,
                label="process peak RSS (no before-load\nreading; counts what ran before)",
            )
        )
    if any_device:
        kinds.append(
            Patch(
                facecolor="#BBBBBB",
                edgecolor="#333333",
                hatch=_DEVICE_HATCH,
                label="device peak allocated (CUDA/MPS/MLX)",
            )
        )
    ax.legend(
        handles=backend_handles([r.backend for r in results]) + kinds,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )


def build_memory(results: Sequence[BenchmarkResult]) -> Figure:
    """The memory figure (not saved); a figure that says so when nothing was recorded.

    Raises:
        ValueError: ``results`` is empty.
    """
    groups = by_workload(results)
    if not groups:
        raise ValueError("no results to plot the memory of")
    title = TITLE
    if not has_memory(results):
        fig, axes = figure_with_panels(1, title=title)
        axes[0].set_axis_off()
        note(axes[0], "No peak memory was recorded in these results.", where="center")
        return fig
    widest = max(len(group) for group in groups.values())
    width = min(max(6.5, 1.0 * widest + 2.5), 30.0)
    fig, axes = figure_with_panels(len(groups), title=title, panel_size=(width, 4.4), columns=1)
    for ax, (workload, group) in zip(axes, groups.items(), strict=True):
        _panel(ax, workload, group)
    return fig


def plot_memory(results: Sequence[BenchmarkResult], path: Path) -> Path:
    """Plot each benchmark's model+inference memory and device peak allocation.

    One panel per workload; bars in the backend's colour: solid for what loading the
    model and running it added to the RSS (``≥`` where it is a lower bound), dotted for
    the measuring process's peak RSS where a result has no before-load reading, hatched
    for the device's peak allocation where the device reports one; a missing value is
    labelled ``n/a``. When no result recorded any memory the figure says so instead of
    failing.

    Args:
        results: The results to plot.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``results`` is empty, or the suffix is not a figure format.
    """
    return draw(lambda: build_memory(results), [path])[0]
