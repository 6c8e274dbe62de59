"""A comparison with a baseline: change per benchmark as bars with confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from as_bench.plots._files import draw
from as_bench.plots._style import CHANGE_COLORS, LOWER_IS_BETTER, figure_with_panels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ComparisonRow", "build_comparison", "plot_comparison"]

_FAILED_COLOR = "#8E1B10"


@runtime_checkable
class ComparisonRow(Protocol):
    """One benchmark compared with its baseline, as the comparison plot needs it.

    ``as_bench.compare.BenchmarkComparison`` has these attributes; any object with them
    (a dataclass, a named tuple) can be plotted too.

    Attributes:
        benchmark: The benchmark's name.
        ratio: New time over baseline time (above 1: slower).
        ratio_ci_low: Lower end of the confidence interval of ``ratio``.
        ratio_ci_high: Upper end of that interval.
        failed: Whether the benchmark failed the regression gate.
        change: ``"regression"``, ``"improvement"`` or ``"unchanged"``.
    """

    @property
    def benchmark(self) -> str: ...
    @property
    def ratio(self) -> float: ...
    @property
    def ratio_ci_low(self) -> float: ...
    @property
    def ratio_ci_high(self) -> float: ...
    @property
    def failed(self) -> bool: ...
    @property
    def change(self) -> str: ...


def _percent(ratio: float) -> float:
    return (ratio - 1.0) * 100.0


def _order(rows: Sequence[ComparisonRow]) -> list[ComparisonRow]:
    # Worst regression on top; rows without a finite ratio at the bottom.
    return sorted(
        rows,
        key=lambda r: (not math.isfinite(r.ratio), -r.ratio if math.isfinite(r.ratio) else 0.0),
    )


def build_comparison(rows: Sequence[ComparisonRow]) -> Figure:
    """The comparison figure (not saved): one horizontal bar per benchmark.

    Raises:
        ValueError: ``rows`` is empty.
    """
    from matplotlib.patches import Patch

    if not rows:
        raise ValueError("no comparison rows to plot")
    ordered = _order(rows)
    n = len(ordered)
    fig, (ax,) = figure_with_panels(
        1,
        title="Change against the baseline per benchmark (new / baseline - 1)",
        panel_size=(8.5, 0.34 * n + 1.6),
    )
    ys = list(range(n - 1, -1, -1))  # first row at the top
    finite = [math.isfinite(r.ratio) for r in ordered]
    widths = [_percent(r.ratio) if ok else 0.0 for r, ok in zip(ordered, finite, strict=True)]
    low = [
        max(w - _percent(r.ratio_ci_low), 0.0) if ok and math.isfinite(r.ratio_ci_low) else 0.0
        for r, w, ok in zip(ordered, widths, finite, strict=True)
    ]
    high = [
        max(_percent(r.ratio_ci_high) - w, 0.0) if ok and math.isfinite(r.ratio_ci_high) else 0.0
        for r, w, ok in zip(ordered, widths, finite, strict=True)
    ]
    colors = [CHANGE_COLORS.get(r.change, CHANGE_COLORS["unchanged"]) for r in ordered]
    bars = ax.barh(
        ys,
        widths,
        height=0.6,
        color=colors,
        edgecolor=[_FAILED_COLOR if r.failed else "none" for r in ordered],
        linewidth=[2.0 if r.failed else 0.0 for r in ordered],
        xerr=[low, high],
        error_kw={"ecolor": "#333333", "capsize": 3, "elinewidth": 1.0},
    )
    for bar, row in zip(bars.patches, ordered, strict=True):
        bar.set_label(row.benchmark)  # lets a reader of the Figure find a row's bar
    ax.axvline(0.0, color="black", linewidth=1.0)
    labels = [f"{r.benchmark}  [FAILED]" if r.failed else r.benchmark for r in ordered]
    ax.set_yticks(ys, labels)
    for tick, row in zip(ax.get_yticklabels(), ordered, strict=True):
        if row.failed:
            tick.set_color(_FAILED_COLOR)
            tick.set_fontweight("bold")
    for y, row, ok, w, lo, hi in zip(ys, ordered, finite, widths, low, high, strict=True):
        if not ok:
            ax.text(0.0, y, "  n/a", va="center", ha="left", fontsize=7, color="#555555")
            continue
        # The value sits just past the end of the error bar, on the bar's side of zero.
        ax.text(
            w + hi if w >= 0 else w - lo,
            y,
            f"  {w:+.1f}%  ",
            va="center",
            ha="left" if w >= 0 else "right",
            fontsize=7,
            color=_FAILED_COLOR if row.failed else "#333333",
        )
    ax.set_ylim(-0.7, n - 0.3)
    ax.margins(x=0.2)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"change in time per call (%; {LOWER_IS_BETTER}), with confidence interval")
    ax.legend(
        handles=[
            Patch(color=CHANGE_COLORS["regression"], label="regression (slower)"),
            Patch(color=CHANGE_COLORS["improvement"], label="improvement (faster)"),
            Patch(color=CHANGE_COLORS["unchanged"], label="no significant change"),
            Patch(facecolor="white", edgecolor=_FAILED_COLOR, linewidth=2.0, label="failed gate"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return fig


def plot_comparison(rows: Sequence[ComparisonRow], path: Path) -> Path:
    """Plot each benchmark's change against the baseline as a horizontal bar.

    Bars show ``(ratio - 1)`` in percent with the ratio's confidence interval as
    asymmetric error bars: red for a regression, green for an improvement, grey when
    unchanged (colour follows ``change``, which knows whether lower or higher is better);
    benchmarks that failed the gate get a dark outline and ``[FAILED]`` in their label.
    The worst regression is on top; a vertical line marks no change.

    Args:
        rows: One row per benchmark, e.g. ``compare_results(base, new).items``.
        path: Where to write the figure; ``.png``, ``.svg`` or ``.pdf``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``rows`` is empty, or the suffix is not a figure format.
    """
    return draw(lambda: build_comparison(rows), [path])[0]
