"""The failure detectors' rules, on hand-made series: exact thresholds, no torch, no clock."""

from __future__ import annotations

import math

from as_optimize.training import (
    DivergenceSettings,
    ExplodingGradientSettings,
    LeakSettings,
    SlowdownSettings,
    StallSettings,
)
from as_optimize.training._detectors import (
    DivergenceDetector,
    ExplodingGradientDetector,
    LeakDetector,
    SlowdownDetector,
    StallDetector,
    nonfinite_finding,
)


def test_nonfinite_names_what_is_not_finite() -> None:
    assert nonfinite_finding(1.0, 2.0) is None
    assert nonfinite_finding(1.0, None) is None
    loss = nonfinite_finding(math.nan, 2.0)
    assert loss is not None and "non-finite loss" in loss.message
    grad = nonfinite_finding(1.0, math.inf)
    assert grad is not None and "gradient norm" in grad.message and "loss" not in grad.message[:20]


def test_divergence_fires_after_patience_high_steps_above_factor_times_median() -> None:
    settings = DivergenceSettings(factor=3.0, window=5, warmup=2, patience=2)
    detector = DivergenceDetector(settings)
    for loss in [5.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        assert detector.observe(loss) is None
    # Median of the window [1, 1, 1, 1, 1] is 1: 3.0 is not above 3 x 1, 3.5 is.
    assert detector.observe(3.0) is None
    assert detector.observe(3.5) is None  # high, 1 of 2
    finding = detector.observe(4.0)  # high, 2 of 2
    assert finding is not None and finding.kind == "divergence"
    assert finding.figures["median"] == 1.0 and finding.figures["loss"] == 4.0
    assert detector.observe(10.0) is None  # the same episode: reported once


def test_divergence_needs_consecutive_high_steps_and_ignores_warmup() -> None:
    detector = DivergenceDetector(DivergenceSettings(factor=2.0, window=3, warmup=3, patience=2))
    # During warm-up nothing fires, however high.
    assert [detector.observe(v) for v in [1.0, 100.0, 1.0]] == [None, None, None]
    detector = DivergenceDetector(DivergenceSettings(factor=2.0, window=3, warmup=0, patience=2))
    for loss in [1.0, 1.0, 1.0, 5.0, 1.0, 5.0, 1.0]:  # never two high in a row
        assert detector.observe(loss) is None


def test_divergence_state_round_trips() -> None:
    settings = DivergenceSettings(factor=3.0, window=4, warmup=0, patience=2)
    first = DivergenceDetector(settings)
    for loss in [1.0, 1.0, 1.0, 1.0, 10.0]:
        first.observe(loss)
    second = DivergenceDetector(settings)
    second.load_state_dict(first.state_dict())
    assert second.observe(10.0) is not None  # the second high step, counted across


def test_exploding_gradient_fires_on_factor_or_ceiling_once_per_episode() -> None:
    settings = ExplodingGradientSettings(factor=10.0, window=4, warmup=3, max_norm=50.0)
    detector = ExplodingGradientDetector(settings)
    assert detector.observe(60.0) is not None  # above the ceiling, even in warm-up
    for norm in [1.0, 1.0, 1.0, 1.0]:
        assert detector.observe(norm) is None
    assert detector.observe(9.0) is None
    finding = detector.observe(11.0)
    assert finding is not None and finding.figures["median"] == 1.0
    assert detector.observe(12.0) is None
    assert detector.observe(1.0) is None
    assert detector.observe(20.0) is not None


def test_stall_fires_after_patience_evaluations_without_improvement() -> None:
    detector = StallDetector(StallSettings(metric="val_loss", patience=2, min_delta=0.01))
    assert detector.observe({"val_loss": 1.0}) is None
    assert detector.observe({"val_loss": 0.995}) is None  # not better by more than 0.01
    finding = detector.observe({"val_loss": 0.999})
    assert finding is not None and finding.kind == "stall" and finding.figures["best"] == 1.0
    assert detector.observe({"accuracy": 0.5}) is None  # evaluations without the metric


def test_stall_in_max_mode_counts_improvements_up() -> None:
    detector = StallDetector(StallSettings(metric="acc", mode="max", patience=1))
    assert detector.observe({"acc": 0.5}) is None
    assert detector.observe({"acc": 0.6}) is None
    assert detector.observe({"acc": 0.6}) is not None


def test_slowdown_compares_the_recent_median_with_the_baseline() -> None:
    detector = SlowdownDetector(SlowdownSettings(factor=1.5, window=3, warmup=1))
    assert detector.observe(9.0) is None  # warm-up
    for t in [1.0, 1.0, 1.0]:  # the baseline: median 1.0
        assert detector.observe(t) is None
    assert detector.baseline == 1.0
    assert detector.observe(2.0) is None  # median of [1, 1, 2] = 1
    finding = detector.observe(2.0)  # median of [1, 2, 2] = 2 > 1.5
    assert finding is not None and finding.figures["baseline_step_time_s"] == 1.0
    assert detector.observe(2.0) is None  # once per episode
    assert detector.observe(1.4) is None  # median [2, 2, 1.4] = 2
    assert detector.observe(1.4) is None  # median 1.4: under 1.5 but not back to 1.25
    assert detector.observe(2.0) is None  # median 1.4
    assert detector.observe(2.0) is None  # median 2.0: still the same episode
    for t in [1.0, 1.0, 1.0]:
        assert detector.observe(t) is None  # back to 1.0: re-armed
    assert detector.observe(2.0) is None
    assert detector.observe(2.0) is not None  # a new episode


def test_leak_needs_growth_and_a_mostly_monotone_series() -> None:
    settings = LeakSettings(window=5, min_growth_bytes=100, monotone_fraction=0.75)
    detector = LeakDetector(settings, "host RSS")
    readings = [1000, 1050, 1040, 1100, 1200]  # +200, 3 of 4 differences >= 0
    findings = [detector.observe(step, value) for step, value in enumerate(readings)]
    assert findings[:-1] == [None] * 4
    last = findings[-1]
    assert last is not None and last.figures["growth_bytes"] == 200
    assert "host RSS grew" in last.message
    # Noise that returns where it started is not a leak.
    detector = LeakDetector(settings, "host RSS")
    for step, value in enumerate([1000, 1300, 900, 1300, 1000, 1400, 1000]):
        assert detector.observe(step, value) is None


def test_divergence_ignores_spikes_far_below_where_the_run_started() -> None:
    # A converged run: the loss fell from about 2 to 0.005. Spikes to 0.05 are 10x the
    # recent median but a fortieth of the start: noise, not divergence. A climb back to
    # the start level is.
    settings = DivergenceSettings(factor=5.0, start_fraction=0.5, window=5, warmup=5, patience=3)
    detector = DivergenceDetector(settings)
    for loss in [2.0, 2.1, 1.9, 2.0, 2.0, 0.005, 0.005, 0.005, 0.005, 0.005]:
        assert detector.observe(loss) is None
    assert detector.start_level == 2.0
    assert [detector.observe(0.05) for _ in range(5)] == [None] * 5
    assert detector.observe(0.005) is None
    findings = [detector.observe(1.5) for _ in range(3)]
    assert findings[:2] == [None, None]
    last = findings[2]
    assert last is not None and last.figures["start_level"] == 2.0
    # Without the start condition the spikes alone count.
    plain = DivergenceDetector(settings.model_copy(update={"start_fraction": 0.0}))
    for loss in [2.0, 2.1, 1.9, 2.0, 2.0, 0.005, 0.005, 0.005, 0.005, 0.005]:
        plain.observe(loss)
    assert [plain.observe(0.05) for _ in range(3)][2] is not None
