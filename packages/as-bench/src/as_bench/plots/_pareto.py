"""Accuracy against latency, marker area by model size, with the Pareto front marked."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from as_bench.plots._data import by_workload, result_label
from as_bench.plots._files import draw
from as_bench.plots._labels import place_labels
from as_bench.plots._style import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    backend_color,
    backend_handles,
    device_handles,
    device_marker,
    figure_with_panels,
    note,
    scale_seconds,
)
from as_bench.results import BenchmarkResult
from as_core.fmt import format_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "build_pareto",
    "has_accuracy",
    "metric_lower_is_better",
    "pareto_front",
    "plot_pareto",
    "primary_metric",
]

# Quality metrics where a smaller number is the better model (regression workloads).
_LOWER_BETTER_WORDS = ("error", "loss", "mse", "mae", "perplexity")
_MIN_AREA, _MAX_AREA = 30.0, 420.0


def metric_lower_is_better(name: str) -> bool:
    """Whether a smaller value of the quality metric ``name`` is better (``mse``, ``loss``)."""
    lowered = name.lower()
    return any(word in lowered for word in _LOWER_BETTER_WORDS)


def pareto_front(points: Sequence[tuple[float, float]], *, maximize_y: bool = True) -> list[int]:
    """The points no other point beats on both latency and quality.

    A point is dominated when another is at least as fast (``x`` no larger) and at least
    as good (``y`` no smaller, or no larger with ``maximize_y=False``) and strictly better
    on one of the two. Identical points do not dominate each other; points with a
    non-finite coordinate are never on the front.

    Args:
        points: ``(x, y)`` pairs: latency (lower is better) and quality.
        maximize_y: Whether a larger ``y`` is better.

    Returns:
        Indices into ``points`` of the non-dominated points, by increasing ``x``.
    """
    sign = 1.0 if maximize_y else -1.0
    finite = [
        (i, x, sign * y) for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)
    ]
    front = [
        (x, y, i)
        for i, x, y in finite
        if not any(xj <= x and yj >= y and (xj < x or yj > y) for j, xj, yj in finite if j != i)
    ]
    return [i for _, _, i in sorted(front, key=lambda item: (item[0], -item[1]))]


def primary_metric(results: Sequence[BenchmarkResult]) -> str | None:
    """The quality metric a workload's results are compared on: the first one recorded."""
    for result in results:
        if result.accuracy:
            return next(iter(result.accuracy))
    return None


def has_accuracy(results: Sequence[BenchmarkResult]) -> bool:
    """Whether any result recorded a quality metric."""
    return any(r.accuracy for r in results)


def _left_out_note(metric: str, left_out: list[BenchmarkResult]) -> str:
    names = [result_label(r) for r in left_out]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"left out, no {metric}: {shown}"


def _panel(ax: Axes, workload: str, results: list[BenchmarkResult]) -> Callable[[], None] | None:
    """Draw one workload's panel; return what labels its points, to call after layout."""
    metric = primary_metric(results)
    if metric is None:
        ax.set_title(f"{workload}: quality against latency")
        note(ax, "no accuracy recorded for this workload", where="center")
        return None
    kept = [r for r in results if r.accuracy and metric in r.accuracy]
    left_out = [r for r in results if not (r.accuracy and metric in r.accuracy)]
    lower_better = metric_lower_is_better(metric)
    scale, unit = scale_seconds([r.median_s for r in kept])
    xs = [r.median_s / scale for r in kept]
    ys = [r.accuracy[metric] for r in kept if r.accuracy]
    sizes = [r.model_size_bytes for r in kept]
    largest = max((s for s in sizes if s), default=0)
    front = pareto_front(list(zip(xs, ys, strict=True)), maximize_y=not lower_better)
    on_front = set(front)
    areas = [
        _MIN_AREA if not size or not largest else max(_MAX_AREA * size / largest, _MIN_AREA)
        for size in sizes
    ]
    for i, result in enumerate(kept):
        color = backend_color(result.backend)
        ax.scatter(
            xs[i],
            ys[i],
            s=areas[i],
            marker=device_marker(result.device),
            # Hollow when the size is unknown, so a small marker is not read as a small model.
            facecolor=color if sizes[i] else "none",
            edgecolor="black" if i in on_front else color,
            linewidth=1.8 if i in on_front else 1.0,
            alpha=0.9,
            zorder=3,
            label=result_label(result),  # names the point for a reader of the Figure
        )
    (front_line,) = ax.plot(
        [xs[i] for i in front],
        [ys[i] for i in front],
        color="black",
        linestyle="--",
        linewidth=1.0,
        zorder=2,
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"median latency ({unit}, log scale; {LOWER_IS_BETTER})")
    better = LOWER_IS_BETTER if lower_better else HIGHER_IS_BETTER
    ax.set_ylabel(f"{metric} ({better})")
    ax.set_title(f"{workload}: {metric} against latency")
    ax.margins(x=0.15, y=0.15)
    handles = [
        front_line,
        *backend_handles([r.backend for r in kept]),
        *device_handles([r.device for r in kept]),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    sized = (
        f"marker area ∝ model size on disk (largest {format_bytes(largest)}); hollow: unknown"
        if largest
        else "model sizes unknown: markers hollow, all one size"
    )
    lines = [f"{sized}; black edge: Pareto-optimal"]
    if left_out:
        lines.append(_left_out_note(metric, left_out))
    note(ax, "\n".join(lines))
    return partial(
        place_labels,
        ax,
        xs,
        ys,
        [result_label(r) for r in kept],
        areas=areas,
        bold=[i in on_front for i in range(len(kept))],
    )


def build_pareto(results: Sequence[BenchmarkResult]) -> Figure:
    """The Pareto figure (not saved): one panel per workload.

    Raises:
        ValueError: ``results`` is empty.
    """
    groups = by_workload(results)
    if not groups:
        raise ValueError("no results to plot the accuracy-latency trade-off of")
    fig, axes = figure_with_panels(
        len(groups),
        title="Quality against median latency; marker area: model size on disk",
        panel_size=(7.5, 4.8),
    )
    labellers = [
        _panel(ax, workload, group)
        for ax, (workload, group) in zip(axes, groups.items(), strict=True)
    ]
    # Labels are placed in the panels' final size, known once the layout has run.
    fig.draw_without_rendering()
    for label in labellers:
        if label is not None:
            label()
    return fig


def plot_pareto(results: Sequence[BenchmarkResult], path: Path) -> Path:
    """Plot quality against median latency with the Pareto-optimal results connected.

    One panel per workload: ``x`` is the median latency (log axis, lower is better),
    ``y`` the workload's quality metric (the first key of ``accuracy``; higher is better
    unless it names an error or a loss), marker area proportional to the model's size on
    disk, colour the backend and marker the device. Pareto-optimal points have a black
    edge and are joined by a dashed line; every point is labelled with its backend,
    device and batch size. Results without the metric are left out and named in a note.

    Args:
        results: The results to plot.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``results`` is empty, or the suffix is not a figure format.
    """
    return draw(lambda: build_pareto(results), [path])[0]
