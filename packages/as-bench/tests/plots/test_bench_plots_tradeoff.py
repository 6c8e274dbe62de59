"""as_bench.plots.plot_tradeoff: latency against size, a style per group, the Pareto front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from as_bench.plots import TradeoffPoint, plot_tradeoff
from as_bench.plots._tradeoff import build_tradeoff

POINTS = [
    TradeoffPoint("fp32", 1e-3, 400_000, "baseline"),
    TradeoffPoint("int8", 4e-4, 100_000, "passed"),
    TradeoffPoint("fp16", 8e-4, 200_000, "passed"),  # beaten by int8 on both counts
    TradeoffPoint("int4", 3e-4, 60_000, "rejected", contender=False),  # best, but gated out
    TradeoffPoint("broken", float("nan"), 0, "rejected", contender=False),
]


def _front_labels() -> list[str]:
    fig = build_tradeoff(POINTS, groups=("baseline", "passed", "rejected"))
    (ax,) = [a for a in fig.axes if a.get_visible()]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"]
    xs = [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]
    kept = [p for p in POINTS if p.label != "broken"]
    scale = 1e-6  # microseconds: the median latency here is under a millisecond
    return [p.label for x in xs for p in kept if abs(p.latency_s / scale - x) < 1e-9]


def test_the_front_holds_only_contenders_that_nothing_beats() -> None:
    # int4 is faster and smaller than all, but not a contender; fp16 and fp32 are beaten.
    assert _front_labels() == ["int8"]


def test_groups_keep_their_order_and_left_out_points_are_named() -> None:
    fig = build_tradeoff(POINTS, groups=("baseline", "passed", "rejected"))
    (ax,) = [a for a in fig.axes if a.get_visible()]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "baseline",
        "passed",
        "rejected",
        "Pareto front",
    ]
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "left out, no latency or size: broken" in texts
    labels = {t.get_text() for t in ax.texts}
    assert {"fp32", "int8", "fp16", "int4"} <= labels


def test_files_in_each_format_and_clear_errors(tmp_path: Path) -> None:
    for suffix in ("png", "svg"):
        path = plot_tradeoff(POINTS, tmp_path / f"t.{suffix}")
        assert path.stat().st_size > 1000
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no point"):
        plot_tradeoff(POINTS[-1:], tmp_path / "none.png")
    with pytest.raises(ValueError, match="suffix"):
        plot_tradeoff(POINTS, tmp_path / "t.txt")
