"""Labels next to scatter points that avoid each other, the markers and the panel's edge.

Results of one workload often sit close together (the same model on two backends), and
labels all put up and to the right then print over each other. Each label here tries a
few places around its point and takes the one that covers the least of what is already
there. Text sizes are estimated from the font size rather than measured, because
measuring needs a drawing pass; the estimate is good enough to keep labels apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["place_labels"]

_Rect = tuple[float, float, float, float]  # left, bottom, right, top, in points

# Directions tried around a point, nearest first: (dx, dy, horizontal and vertical alignment).
_DIRECTIONS = (
    (1.0, 0.0, "left", "center"),
    (0.7, 0.7, "left", "bottom"),
    (0.7, -0.7, "left", "top"),
    (-1.0, 0.0, "right", "center"),
    (-0.7, 0.7, "right", "bottom"),
    (-0.7, -0.7, "right", "top"),
    (0.0, 1.0, "center", "bottom"),
    (0.0, -1.0, "center", "top"),
)


def _overlap(a: _Rect, b: _Rect) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _cost(rect: _Rect, others: Sequence[_Rect], panel: _Rect) -> float:
    # What the label would cover of other labels and markers, plus its part off the panel.
    area = (rect[2] - rect[0]) * (rect[3] - rect[1])
    return sum(_overlap(rect, other) for other in others) + area - _overlap(rect, panel)


def _rect(x: float, y: float, w: float, h: float, ha: str, va: str) -> _Rect:
    left = {"left": x, "right": x - w, "center": x - w / 2}[ha]
    bottom = {"bottom": y, "top": y - h, "center": y - h / 2}[va]
    return (left, bottom, left + w, bottom + h)


def place_labels(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    areas: Sequence[float],
    bold: Sequence[bool],
    fontsize: float = 7.0,
) -> None:
    """Annotate each point ``(xs[i], ys[i])`` with ``labels[i]`` where it overlaps least.

    Call after the data, scales and margins are set: positions are worked out in the
    panel's current coordinates.

    Args:
        ax: The panel.
        xs: The points' x in data coordinates.
        ys: The points' y in data coordinates.
        labels: One label per point.
        areas: Marker areas in points², as given to ``scatter``.
        bold: Which labels are bold (they are wider).
        fontsize: The labels' font size in points.
    """
    # The panel's size before the layout engine adjusts it: close enough for spacing.
    to_points = 72.0 / ax.figure.dpi
    width_pt, height_pt = ax.bbox.width * to_points, ax.bbox.height * to_points
    to_axes = ax.transScale + ax.transLimits  # data -> fraction of the panel, any scale
    points = [tuple(to_axes.transform((x, y))) for x, y in zip(xs, ys, strict=True)]
    centres = [(fx * width_pt, fy * height_pt) for fx, fy in points]
    radii = [math.sqrt(max(a, 1.0)) / 2 for a in areas]
    taken: list[_Rect] = [
        (cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, radii, strict=True)
    ]
    outside = (0.0, 0.0, width_pt, height_pt)
    for i, label in enumerate(labels):
        w = fontsize * (0.64 if bold[i] else 0.58) * len(label)
        h = fontsize * 1.25
        cx, cy = centres[i]
        candidates = [
            (ux * reach, uy * reach, ha, va)
            for reach in (radii[i] + 3, radii[i] + 14)
            for ux, uy, ha, va in _DIRECTIONS
        ]
        rects = [_rect(cx + dx, cy + dy, w, h, ha, va) for dx, dy, ha, va in candidates]
        others = [t for j, t in enumerate(taken) if j != i]
        costs = [_cost(rect, others, outside) for rect in rects]
        # index() finds the first of equal costs: the nearest place wins a tie.
        chosen = costs.index(min(costs))
        best = candidates[chosen]
        dx, dy, ha, va = best
        taken.append(rects[chosen])
        far = math.hypot(dx, dy) > radii[i] + 8
        ax.annotate(
            label,
            (xs[i], ys[i]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=fontsize,
            fontweight="bold" if bold[i] else "normal",
            arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.6} if far else None,
        )
