"""Latency distributions: a box per backend, device and batch size, a panel per workload."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from as_bench.plots._data import by_workload, function_name
from as_bench.plots._files import draw
from as_bench.plots._style import (
    LOWER_IS_BETTER,
    backend_color,
    backend_handles,
    device_handles,
    device_hatch,
    figure_with_panels,
    note,
    scale_seconds,
)
from as_bench.results import BenchmarkResult
from as_bench.results._measured import is_function_result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LOG_SPAN", "build_distributions", "plot_distributions"]

LOG_SPAN = 20.0
"""A panel switches to a log axis when its largest sample is this many times its smallest."""

_MAX_DOTS = 300


def _tick(result: BenchmarkResult) -> str:
    if is_function_result(result):  # every function's backend is "python": name it
        label = f"{function_name(result)}\n{result.device}"
        label += f" bs{result.batch_size}" if result.batch_size != 1 else ""
    else:
        label = f"{result.backend}\n{result.device} bs{result.batch_size}"
    if result.measurement.device_time is not None:
        label += "\n(device time)"
    return label


def _panel(ax: Axes, workload: str, results: list[BenchmarkResult]) -> None:
    kept = [r for r in results if r.measurement.primary.samples_s]
    if not kept:
        ax.set_title(f"{workload}: time per call")
        note(ax, "no samples recorded", where="center")
        return
    values = [v for r in kept for v in r.measurement.primary.samples_s]
    scale, unit = scale_seconds(values)
    positions = np.arange(1, len(kept) + 1)
    boxes = ax.boxplot(
        [np.asarray(r.measurement.primary.samples_s) / scale for r in kept],
        positions=positions,
        widths=0.6,
        patch_artist=True,
        showfliers=True,
        flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
        medianprops={"color": "black", "linewidth": 1.5},
        zorder=2,
    )
    for patch, result in zip(boxes["boxes"], kept, strict=True):
        patch.set_facecolor(backend_color(result.backend))
        patch.set_edgecolor("#333333")
        patch.set_hatch(device_hatch(result.device))
        patch.set_alpha(0.6)
    # Every sample as a faint dot in the backend's colour, so a tight box still shows whose
    # it is and a bimodal distribution shows its two modes; jitter is seeded (same file
    # for the same data) and at most _MAX_DOTS per box keeps vector files small.
    rng = np.random.default_rng(0)
    for position, result in zip(positions, kept, strict=True):
        samples = np.asarray(result.measurement.primary.samples_s) / scale
        if len(samples) > _MAX_DOTS:
            samples = samples[np.linspace(0, len(samples) - 1, _MAX_DOTS).astype(int)]
        ax.scatter(
            position + rng.uniform(-0.22, 0.22, len(samples)),
            samples,
            s=6,
            color=backend_color(result.backend),
            alpha=0.35,
            linewidths=0,
            zorder=3,
        )
    positive = [v for v in values if v > 0]
    log = bool(positive) and max(positive) / min(positive) > LOG_SPAN
    if log:
        ax.set_yscale("log")
    ax.set_xticks(positions, [_tick(r) for r in kept])
    ax.set_xlim(0.4, len(kept) + 0.6)
    scale_note = ", log scale" if log else ""
    ax.set_ylabel(f"time per call ({unit}{scale_note}; {LOWER_IS_BETTER})")
    ax.set_title(f"{workload}: time per call, all samples")
    # Functions all have the backend "python": their ticks name them, the legend need not.
    backends = [r.backend for r in kept if not is_function_result(r)]
    ax.legend(
        handles=backend_handles(backends) + device_handles([r.device for r in kept], kind="hatch"),
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    left_out = len(results) - len(kept)
    if left_out:
        note(ax, f"{left_out} result(s) without samples left out")


def build_distributions(results: Sequence[BenchmarkResult]) -> Figure:
    """The distributions figure (not saved): one panel per workload.

    Raises:
        ValueError: ``results`` is empty.
    """
    groups = by_workload(results)
    if not groups:
        raise ValueError("no results to plot the latency distributions of")
    widest = max(len(group) for group in groups.values())
    width = min(max(6.5, 1.0 * widest + 2.5), 30.0)
    functions = all(is_function_result(r) for group in groups.values() for r in group)
    what = "function and device" if functions else "backend, device and batch size"
    fig, axes = figure_with_panels(
        len(groups),
        title=f"Time per call by {what} (box: quartiles and median; whiskers: 1.5 IQR)",
        panel_size=(width, 4.6),
        columns=1,
    )
    for ax, (workload, group) in zip(axes, groups.items(), strict=True):
        _panel(ax, workload, group)
    fig.supxlabel(
        "Samples are the synchronised latency of a call, or device time (device events) "
        "where marked; dots: every sample.",
        fontsize=7,
        color="#555555",
    )
    return fig


def plot_distributions(results: Sequence[BenchmarkResult], path: Path) -> Path:
    """Plot every latency sample as a box per backend, device and batch size.

    One panel per workload; the samples are each result's primary series (device time
    where the device has events, else latency), in a unit chosen from the data, on a log
    axis when a panel's samples span more than :data:`LOG_SPAN` times. Repeated runs of
    a benchmark show the latest.

    Args:
        results: The results to plot.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``results`` is empty, or the suffix is not a figure format.
    """
    return draw(lambda: build_distributions(results), [path])[0]
