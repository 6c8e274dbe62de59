"""Throughput against batch size: a line per backend and device, a panel per workload."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from as_bench.plots._data import by_workload
from as_bench.plots._files import draw
from as_bench.plots._style import (
    HIGHER_IS_BETTER,
    backend_color,
    device_linestyle,
    device_marker,
    figure_with_panels,
    note,
)
from as_bench.results import BenchmarkResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["build_throughput", "has_throughput_curve", "plot_throughput", "throughput_of"]

_LOG_SPAN = 20.0


def throughput_of(result: BenchmarkResult) -> float | None:
    """Items per second: the recorded value, else batch size over the median latency."""
    if result.throughput_items_per_s is not None:
        return result.throughput_items_per_s
    median = result.median_s
    return result.batch_size / median if median > 0 and math.isfinite(median) else None


def _curves(results: Sequence[BenchmarkResult]) -> set[tuple[str, str, str]]:
    """The (workload, backend, device) lines with throughput at two batch sizes or more."""
    batches: dict[tuple[str, str, str], set[int]] = {}
    for result in results:
        value = throughput_of(result)
        if value is not None and value > 0:
            key = (result.workload, result.backend, result.device)
            batches.setdefault(key, set()).add(result.batch_size)
    return {key for key, sizes in batches.items() if len(sizes) >= 2}


def has_throughput_curve(results: Sequence[BenchmarkResult]) -> bool:
    """Whether any backend and device of a workload has throughput at two batch sizes.

    A line of one point says nothing about batch size: functions measured at their one
    batch size, or a suite run at one batch size, get no throughput figure.
    """
    return bool(_curves(results))


def _panel(ax: Axes, workload: str, results: list[BenchmarkResult]) -> None:
    from matplotlib.ticker import NullLocator

    lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for result in results:
        value = throughput_of(result)
        if value is not None and value > 0:
            key = (result.backend, result.device)
            lines.setdefault(key, []).append((result.batch_size, value))
    ax.set_title(f"{workload}: throughput against batch size")
    if not lines:
        note(ax, "no throughput recorded", where="center")
        return
    for (backend, device), points in lines.items():
        points.sort()
        ax.plot(
            [b for b, _ in points],
            [v for _, v in points],
            color=backend_color(backend),
            marker=device_marker(device),
            linestyle=device_linestyle(device),
            linewidth=1.6,
            markersize=6,
            label=f"{backend}/{device}",
        )
    batches = sorted({b for points in lines.values() for b, _ in points})
    values = [v for points in lines.values() for _, v in points]
    if batches[-1] / batches[0] >= 4:
        ax.set_xscale("log", base=2)
    # Ticks at the batch sizes measured, as plain integers, nothing in between.
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(NullLocator())
    log = max(values) / min(values) > _LOG_SPAN
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("batch size (items per call)")
    ax.set_ylabel(f"throughput (items/s{', log scale' if log else ''}; {HIGHER_IS_BETTER})")
    ax.legend(loc="best")


def build_throughput(results: Sequence[BenchmarkResult]) -> Figure:
    """The throughput figure (not saved): one panel per workload.

    Only the workloads with a line of two batch sizes or more get a panel, when any has
    (see :func:`has_throughput_curve`); otherwise every workload does.

    Raises:
        ValueError: ``results`` is empty.
    """
    groups = by_workload(results)
    if not groups:
        raise ValueError("no results to plot the throughput of")
    curved = {workload for workload, _, _ in _curves(results)}
    if curved:
        groups = {workload: group for workload, group in groups.items() if workload in curved}
    fig, axes = figure_with_panels(
        len(groups), title="Throughput (items/s) against batch size by backend and device"
    )
    for ax, (workload, group) in zip(axes, groups.items(), strict=True):
        _panel(ax, workload, group)
    return fig


def plot_throughput(results: Sequence[BenchmarkResult], path: Path) -> Path:
    """Plot items per second against batch size, one line per backend and device.

    One panel per workload; colour is the backend, marker and line style the device.
    Throughput is the recorded ``throughput_items_per_s`` (batch size over the median
    latency when absent). Repeated runs of a benchmark show the latest.

    Args:
        results: The results to plot.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``results`` is empty, or the suffix is not a figure format.
    """
    return draw(lambda: build_throughput(results), [path])[0]
