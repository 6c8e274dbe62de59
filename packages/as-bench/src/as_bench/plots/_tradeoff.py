"""Latency against size on disk, a style per group, with the Pareto front of the two marked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from as_bench.plots._files import draw
from as_bench.plots._labels import place_labels
from as_bench.plots._pareto import pareto_front
from as_bench.plots._style import (
    LOWER_IS_BETTER,
    figure_with_panels,
    note,
    scale_bytes,
    scale_seconds,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TradeoffPoint", "build_tradeoff", "plot_tradeoff"]

# Okabe-Ito colours and distinct markers, taken in the order the groups are given, so a
# caller that always lists its groups in the same order gets the same style for each.
_GROUP_COLORS: Final = ("#0072B2", "#009E73", "#D55E00", "#7F7F7F", "#CC79A7", "#E69F00")
_GROUP_MARKERS: Final = ("o", "s", "X", "v", "D", "^")
_AREA: Final = 60.0


@dataclass(frozen=True)
class TradeoffPoint:
    """One model of a latency-size trade-off.

    Attributes:
        label: Its name beside the marker.
        latency_s: Its median latency, seconds.
        size_bytes: Its size on disk, bytes.
        group: What it is (a status such as ``"passed"``): one colour and marker per group.
        contender: Whether it may be on the Pareto front (a model that failed a quality
            gate is drawn but never on the front).
    """

    label: str
    latency_s: float
    size_bytes: float
    group: str
    contender: bool = True


def _plottable(point: TradeoffPoint) -> bool:
    return (
        math.isfinite(point.latency_s)
        and point.latency_s > 0
        and math.isfinite(point.size_bytes)
        and point.size_bytes > 0
    )


def build_tradeoff(
    points: Sequence[TradeoffPoint],
    *,
    title: str = "Median latency against size on disk",
    groups: Sequence[str] = (),
) -> Figure:
    """The trade-off figure (not saved); see :func:`plot_tradeoff`.

    Raises:
        ValueError: No point has a positive, finite latency and size.
    """
    kept = [p for p in points if _plottable(p)]
    if not kept:
        raise ValueError("no point with a positive latency and size to plot")
    order = list(dict.fromkeys([*groups, *(p.group for p in kept)]))
    style = {
        group: (_GROUP_COLORS[i % len(_GROUP_COLORS)], _GROUP_MARKERS[i % len(_GROUP_MARKERS)])
        for i, group in enumerate(order)
    }
    t_scale, t_unit = scale_seconds([p.latency_s for p in kept])
    b_scale, b_unit = scale_bytes([p.size_bytes for p in kept])
    xs = [p.latency_s / t_scale for p in kept]
    ys = [p.size_bytes / b_scale for p in kept]
    contenders = [i for i, p in enumerate(kept) if p.contender]
    front_local = pareto_front([(xs[i], ys[i]) for i in contenders], maximize_y=False)
    front = [contenders[i] for i in front_local]
    on_front = set(front)
    fig, (ax,) = figure_with_panels(1, title=title, panel_size=(8.0, 5.0))
    for group in order:
        members = [i for i, p in enumerate(kept) if p.group == group]
        if not members:
            continue
        color, marker = style[group]
        ax.scatter(
            [xs[i] for i in members],
            [ys[i] for i in members],
            s=_AREA,
            marker=marker,
            facecolor=color,
            edgecolor=["black" if i in on_front else color for i in members],
            linewidth=[1.8 if i in on_front else 1.0 for i in members],
            alpha=0.9,
            zorder=3,
            label=group,
        )
    if front:
        ax.plot(
            [xs[i] for i in front],
            [ys[i] for i in front],
            color="black",
            linestyle="--",
            linewidth=1.0,
            zorder=2,
            label="Pareto front",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import LogFormatter

    for axis in (ax.xaxis, ax.yaxis):
        # Plain numbers (15.2, not 1.52x10^1): a narrow range labels minor ticks too.
        axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel(f"median latency ({t_unit}, log scale; {LOWER_IS_BETTER})")
    ax.set_ylabel(f"size on disk ({b_unit}, log scale; {LOWER_IS_BETTER})")
    ax.margins(x=0.2, y=0.2)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    left_out = [p.label for p in points if not _plottable(p)]
    lines = ["black edge and dashed line: Pareto-optimal among the contenders"]
    if left_out:
        shown = ", ".join(left_out[:4]) + (
            f" and {len(left_out) - 4} more" if len(left_out) > 4 else ""
        )
        lines.append(f"left out, no latency or size: {shown}")
    note(ax, "\n".join(lines))
    fig.draw_without_rendering()
    place_labels(
        ax,
        xs,
        ys,
        [p.label for p in kept],
        areas=[_AREA] * len(kept),
        bold=[i in on_front for i in range(len(kept))],
    )
    return fig


def plot_tradeoff(
    points: Sequence[TradeoffPoint],
    path: Path,
    *,
    title: str = "Median latency against size on disk",
    groups: Sequence[str] = (),
) -> Path:
    """Plot models by median latency and size on disk, with their Pareto front.

    One panel, both axes logarithmic and lower is better on both: ``x`` the median
    latency, ``y`` the size on disk. Each group (a status such as ``"passed"`` or
    ``"rejected"``) has its own colour and marker, assigned in the order of ``groups``
    and then of first appearance. Among the points that are contenders, those that no
    other contender beats on both counts have a black edge and are joined by a dashed
    line; every point is labelled. Points without a positive latency or size are left
    out and named in a note.

    Args:
        points: The models.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.
        title: The figure's title.
        groups: Groups to style first, in this order (a fixed order keeps a group's
            style from one figure to the next).

    Returns:
        ``path``.

    Raises:
        ValueError: No point can be plotted, or the suffix is not a figure format.
    """
    return draw(lambda: build_tradeoff(points, title=title, groups=groups), [path])[0]
