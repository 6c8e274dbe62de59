"""Reading a model server's /metrics: parsing, quantiles, rates between readings."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from as_dashboard.live import (
    LiveHistory,
    MetricsUnavailableError,
    histogram_quantile,
    interval,
    parse_metrics,
    read_metrics,
)


def test_a_reading_sums_requests_by_code_and_reads_the_gauges(h: Any) -> None:
    metrics = h.FakeServerMetrics()
    metrics.requests.labels("digits", "200").inc(7)
    metrics.requests.labels("other", "200").inc(3)
    metrics.requests.labels("digits", "422").inc(2)
    metrics.requests.labels("digits", "503").inc(1)
    metrics.queue.labels("digits").set(4)
    metrics.queue.labels("other").set(1)
    metrics.in_flight.set(5)
    metrics.loaded.set(2)
    reading = parse_metrics(metrics.text(), at_s=10.0)
    assert reading.requests == {"200": 10.0, "422": 2.0, "503": 1.0}
    assert reading.total_requests == 13 and reading.total_errors == 3
    assert (reading.queue_depth, reading.in_flight, reading.loaded_models) == (5, 5, 2)
    assert reading.models == ("digits", "other")


def test_text_that_is_not_an_as_deploy_servers_metrics_is_refused_by_name() -> None:
    other = CollectorRegistry()
    Counter("http_requests", "h", registry=other).inc()
    with pytest.raises(MetricsUnavailableError, match="no as_deploy_"):
        parse_metrics(generate_latest(other).decode(), at_s=0.0)
    with pytest.raises(MetricsUnavailableError, match=r"not Prometheus text|no as_deploy_"):
        parse_metrics("<html><body>hello</body></html>", at_s=0.0)


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    # 100 observations: 50 in (0, 1], 40 in (1, 2], 10 in (2, 4].
    buckets = [(1.0, 50.0), (2.0, 90.0), (4.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.5)
    assert histogram_quantile(0.7, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.95, buckets) == pytest.approx(3.0)
    # In the +Inf bucket: the largest finite bound, as histogram_quantile answers.
    assert histogram_quantile(0.99, [(1.0, 10.0), (float("inf"), 20.0)]) == 1.0
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_an_interval_gives_rates_quantiles_and_batch_size_of_what_happened_in_it(h: Any) -> None:
    metrics = h.FakeServerMetrics()
    metrics.requests.labels("digits", "200").inc(100)
    for _ in range(100):
        metrics.latency.labels("digits", "200").observe(0.02)  # slow, before the interval
    before = parse_metrics(metrics.text(), at_s=100.0)
    metrics.requests.labels("digits", "200").inc(38)
    metrics.requests.labels("digits", "422").inc(2)
    for _ in range(40):
        metrics.latency.labels("digits", "200").observe(0.002)  # all in (0.001, 0.0025]
    for rows in (1, 4, 4, 7):
        metrics.batch.labels("digits").observe(rows)
    metrics.queue.labels("digits").set(3)
    after = parse_metrics(metrics.text(), at_s=104.0)
    got = interval(before, after)
    assert got.seconds == 4.0
    assert got.requests_per_s == pytest.approx(10.0)
    assert got.errors_per_s == pytest.approx(0.5)
    # Only the interval's 40 fast observations count, not the 100 slow ones before it.
    assert got.p50_s is not None and 0.001 < got.p50_s <= 0.0025
    assert got.p99_s is not None and got.p99_s <= 0.0025
    assert got.mean_batch_size == pytest.approx(4.0)
    assert got.queue_depth == 3


def test_a_server_restart_counts_from_zero_instead_of_going_negative(h: Any) -> None:
    first = h.FakeServerMetrics()
    first.requests.labels("digits", "200").inc(500)
    for _ in range(500):
        first.latency.labels("digits", "200").observe(0.02)
    restarted = h.FakeServerMetrics()
    restarted.requests.labels("digits", "200").inc(20)
    for _ in range(20):
        restarted.latency.labels("digits", "200").observe(0.004)
    got = interval(parse_metrics(first.text(), 0.0), parse_metrics(restarted.text(), 2.0))
    assert got.requests_per_s == pytest.approx(10.0)
    assert got.p50_s is not None and 0.0025 < got.p50_s <= 0.005


def test_history_keeps_the_last_readings_and_gives_one_interval_per_pair(h: Any) -> None:
    metrics = h.FakeServerMetrics()
    history = LiveHistory("http://x", keep=3)
    assert history.latest is None and history.intervals() == []
    for second in range(5):
        metrics.requests.labels("m", "200").inc(second)
        history.add(parse_metrics(metrics.text(), float(second)))
    assert [r.at_s for r in history.readings] == [2.0, 3.0, 4.0]
    assert [i.requests_per_s for i in history.intervals()] == [3.0, 4.0]


def test_read_metrics_fetches_over_http_and_stamps_the_reading_with_the_clock(
    http_server: tuple[str, dict[str, tuple[int, bytes]]], h: Any
) -> None:
    url, answers = http_server
    metrics = h.FakeServerMetrics()
    metrics.requests.labels("digits", "200").inc(4)
    answers["/metrics"] = (200, metrics.text().encode())
    reading = read_metrics(url + "/", clock=lambda: 42.0)
    assert reading.at_s == 42.0 and reading.total_requests == 4


def test_an_unreachable_or_wrong_server_is_an_error_that_names_the_url(
    http_server: tuple[str, dict[str, tuple[int, bytes]]], h: Any
) -> None:
    url, answers = http_server
    with pytest.raises(MetricsUnavailableError, match=r"/metrics answered HTTP 404"):
        read_metrics(url)
    answers["/metrics"] = (200, b"# just a comment\n")
    with pytest.raises(MetricsUnavailableError, match=rf"{url}/metrics: no as_deploy_"):
        read_metrics(url)
    port = h.free_port()
    with pytest.raises(MetricsUnavailableError, match=rf"127.0.0.1:{port}/metrics cannot be"):
        read_metrics(f"http://127.0.0.1:{port}", timeout_s=5)
    with pytest.raises(MetricsUnavailableError, match="not an http"):
        read_metrics("ftp://example.org")
