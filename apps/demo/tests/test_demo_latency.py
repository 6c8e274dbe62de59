"""LatencyLog: each request's latency and every version's rolling p50/p99."""

from __future__ import annotations

import numpy as np
import pytest

from as_demo.latency import LatencyLog


def test_quantiles_cover_the_last_window_of_each_version() -> None:
    log = LatencyLog(window=4)
    for ms in (10, 20, 30, 40, 1000):
        log.add("digits-cnn/1", ms / 1e3)
    sample = log.add("digits-cnn/2", 0.005)
    last = log.history("digits-cnn/1")[-1]
    # The last four of version 1: 20, 30, 40, 1000 ms (the first left the window).
    assert last.p50_ms == pytest.approx(35.0)
    assert last.p99_ms == pytest.approx(float(np.quantile([20, 30, 40, 1000], 0.99)))
    assert last.index == 5 and sample.index == 6 and log.count == 6
    assert sample.p50_ms == sample.p99_ms == pytest.approx(5.0)
    summaries = {s.key: s for s in log.summaries()}
    assert list(summaries) == ["digits-cnn/1", "digits-cnn/2"]
    assert summaries["digits-cnn/1"].requests == 5
    assert summaries["digits-cnn/1"].last_ms == pytest.approx(1000.0)


def test_the_chart_draws_each_request_and_both_quantiles_per_version() -> None:
    log = LatencyLog(window=10)
    empty = log.figure()
    assert empty.axes[0].texts[0].get_text() == "no requests yet"
    for i in range(12):
        log.add("a/1", 0.001 * (i + 1))
        log.add("b/1", 0.002)
    axes = log.figure().axes[0]
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels == ["a/1 p50", "a/1 p99", "b/1 p50", "b/1 p99"]
    p50 = np.asarray(axes.get_lines()[0].get_ydata())
    assert len(p50) == 12 and p50[-1] == pytest.approx(7.5)  # median of 3..12 ms
    assert len(axes.collections) == 2  # one scatter of requests per version


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_a_latency_that_is_not_a_duration_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite and not negative"):
        LatencyLog().add("a/1", seconds)


def test_a_window_under_two_requests_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        LatencyLog(window=1)
