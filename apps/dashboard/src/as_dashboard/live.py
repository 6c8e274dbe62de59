"""A model server's live figures from its ``/metrics`` (Prometheus text).

:func:`read_metrics` fetches and parses one reading (prometheus_client's text parser);
:class:`LiveHistory` keeps the readings and turns each pair of successive readings into
the figures of that interval: requests and errors per second, latency quantiles from the
histogram's bucket counts (interpolated within a bucket, as Prometheus'
``histogram_quantile`` does), the mean batch size, and the gauges (queue depth, requests
in flight). The metric names are those as-deploy's README documents.
"""

from __future__ import annotations

import itertools
import math
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "BATCH_SIZE",
    "IN_FLIGHT",
    "LATENCY",
    "LOADED_MODELS",
    "QUEUE_DEPTH",
    "REQUESTS",
    "Interval",
    "LiveHistory",
    "MetricsReading",
    "MetricsUnavailableError",
    "fetch_metrics_text",
    "histogram_quantile",
    "parse_metrics",
    "read_metrics",
]

#: Predict requests by model and HTTP status code (a counter).
REQUESTS = "as_deploy_requests"
#: Predict request latency by model and code (a histogram, seconds).
LATENCY = "as_deploy_request_duration_seconds"
#: Rows of each inference by model (a histogram).
BATCH_SIZE = "as_deploy_batch_size"
#: Requests waiting to be batched, by model (a gauge).
QUEUE_DEPTH = "as_deploy_queue_depth"
#: Predict requests in flight (a gauge).
IN_FLIGHT = "as_deploy_in_flight_requests"
#: Model versions loaded now (a gauge).
LOADED_MODELS = "as_deploy_loaded_models"


class MetricsUnavailableError(RuntimeError):
    """``/metrics`` could not be read or parsed; the message says where and why."""


@dataclass(frozen=True)
class Histogram:
    """One histogram summed over its label sets: cumulative bucket counts, sum and count.

    Attributes:
        buckets: ``(upper bound, cumulative count)``, ascending, ``inf`` last.
        total: The sum of the observations.
        count: How many observations.
    """

    buckets: tuple[tuple[float, float], ...] = ()
    total: float = 0.0
    count: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made since ``earlier`` (a counter reset counts from zero)."""
        if self.count < earlier.count:  # the server restarted: its counters began again
            return self
        before = dict(earlier.buckets)
        return Histogram(
            tuple((bound, count - before.get(bound, 0.0)) for bound, count in self.buckets),
            self.total - earlier.total,
            self.count - earlier.count,
        )


@dataclass(frozen=True)
class MetricsReading:
    """One reading of ``/metrics``, summed over models.

    Attributes:
        at_s: When it was read, seconds on the history's clock.
        requests: Predict requests by HTTP status code (counter totals).
        latency: Request latency, every model and code.
        batch_size: Rows per inference, every model.
        queue_depth: Requests waiting to be batched, every model.
        in_flight: Predict requests in flight.
        loaded_models: Model versions loaded.
        models: The models named in the reading.
    """

    at_s: float
    requests: Mapping[str, float] = field(default_factory=dict)
    latency: Histogram = Histogram()
    batch_size: Histogram = Histogram()
    queue_depth: float = 0.0
    in_flight: float = 0.0
    loaded_models: float = 0.0
    models: tuple[str, ...] = ()

    @property
    def total_requests(self) -> float:
        """Predict requests answered so far, any status."""
        return sum(self.requests.values())

    @property
    def total_errors(self) -> float:
        """Predict requests answered with a status of 400 or more."""
        return sum(n for code, n in self.requests.items() if _is_error(code))


def _is_error(code: str) -> bool:
    return not code.isdigit() or int(code) >= 400


def _histogram(samples: Iterable[tuple[str, Mapping[str, str], float]], name: str) -> Histogram:
    buckets: dict[float, float] = {}
    total = count = 0.0
    for sample, labels, value in samples:
        if sample == f"{name}_bucket":
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif sample == f"{name}_sum":
            total += value
        elif sample == f"{name}_count":
            count += value
    return Histogram(tuple(sorted(buckets.items())), total, count)


def parse_metrics(text: str, at_s: float) -> MetricsReading:
    """Parse Prometheus text into a :class:`MetricsReading` taken at ``at_s``.

    Raises:
        MetricsUnavailableError: The text is not the Prometheus exposition format, or it
            holds none of as-deploy's metrics (the URL is not an as-deploy server).
    """
    families: dict[str, list[tuple[str, Mapping[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MetricsUnavailableError(f"not Prometheus text: {exc}") from exc
    if not any(name.startswith("as_deploy_") for name in families):
        raise MetricsUnavailableError(
            "no as_deploy_* metric in the answer: is this an as-deploy server's /metrics?"
        )
    requests: dict[str, float] = {}
    models: set[str] = set()
    for sample, labels, value in families.get(REQUESTS, []):
        if sample == f"{REQUESTS}_total":
            code = labels.get("code", "?")
            requests[code] = requests.get(code, 0.0) + value
            models.add(labels.get("model", "?"))

    def gauge(name: str) -> float:
        return sum(value for sample, _, value in families.get(name, []) if sample == name)

    return MetricsReading(
        at_s=at_s,
        requests=requests,
        latency=_histogram(families.get(LATENCY, []), LATENCY),
        batch_size=_histogram(families.get(BATCH_SIZE, []), BATCH_SIZE),
        queue_depth=gauge(QUEUE_DEPTH),
        in_flight=gauge(IN_FLIGHT),
        loaded_models=gauge(LOADED_MODELS),
        models=tuple(sorted(models)),
    )


def fetch_metrics_text(url: str, *, timeout_s: float = 2.0) -> str:
    """GET ``<url>/metrics`` and return its text.

    Raises:
        MetricsUnavailableError: The server cannot be reached, answers an error, or
            takes longer than ``timeout_s``.
    """
    target = url.rstrip("/") + "/metrics"
    if not target.startswith(("http://", "https://")):
        raise MetricsUnavailableError(f"{url!r} is not an http:// or https:// URL")
    request = urllib.request.Request(target, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise MetricsUnavailableError(f"{target} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetricsUnavailableError(f"{target} cannot be reached: {reason}") from exc
    return body.decode("utf-8", errors="replace")


def read_metrics(
    url: str, *, timeout_s: float = 2.0, clock: Callable[[], float] = time.monotonic
) -> MetricsReading:
    """Fetch and parse one reading of ``<url>/metrics``, stamped with ``clock()``.

    Raises:
        MetricsUnavailableError: As :func:`fetch_metrics_text` and :func:`parse_metrics`.
    """
    text = fetch_metrics_text(url, timeout_s=timeout_s)
    at = clock()
    try:
        return parse_metrics(text, at)
    except MetricsUnavailableError as exc:
        raise MetricsUnavailableError(f"{url.rstrip('/')}/metrics: {exc}") from exc


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram's cumulative buckets, as Prometheus estimates it.

    Linear interpolation within the bucket that holds the quantile (the first bucket
    starts at 0); a quantile in the ``+Inf`` bucket is the largest finite bound.
    ``None`` when the histogram holds no observation.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Interval:
    """What happened between two readings.

    Attributes:
        at_s: The later reading's time.
        seconds: The interval's length.
        requests_per_s: Predict requests answered per second.
        errors_per_s: Of those, answers with a status of 400 or more, per second.
        p50_s: Median request latency in the interval; ``None`` without requests.
        p90_s: 90th percentile.
        p99_s: 99th percentile.
        mean_batch_size: Rows per inference in the interval; ``None`` without inferences.
        queue_depth: Requests waiting to be batched at the later reading.
        in_flight: Requests in flight at the later reading.
    """

    at_s: float
    seconds: float
    requests_per_s: float
    errors_per_s: float
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    mean_batch_size: float | None
    queue_depth: float
    in_flight: float


def _delta(now: float, before: float) -> float:
    return now if now < before else now - before  # a counter reset counts from zero


def interval(before: MetricsReading, after: MetricsReading) -> Interval:
    """The figures of the interval from ``before`` to ``after``."""
    seconds = max(after.at_s - before.at_s, 1e-9)
    codes = set(before.requests) | set(after.requests)
    delta = {c: _delta(after.requests.get(c, 0.0), before.requests.get(c, 0.0)) for c in codes}
    latency = after.latency.minus(before.latency).buckets
    batches = after.batch_size.minus(before.batch_size)
    return Interval(
        at_s=after.at_s,
        seconds=seconds,
        requests_per_s=sum(delta.values()) / seconds,
        errors_per_s=sum(n for code, n in delta.items() if _is_error(code)) / seconds,
        p50_s=histogram_quantile(0.5, latency),
        p90_s=histogram_quantile(0.9, latency),
        p99_s=histogram_quantile(0.99, latency),
        mean_batch_size=batches.total / batches.count if batches.count > 0 else None,
        queue_depth=after.queue_depth,
        in_flight=after.in_flight,
    )


class LiveHistory:
    """The last readings of one server, and the intervals between them.

    Args:
        url: The server's base URL.
        keep: How many readings to keep.
    """

    def __init__(self, url: str, keep: int = 300) -> None:
        """Start an empty history of ``url``."""
        self.url = url
        self._readings: deque[MetricsReading] = deque(maxlen=max(2, keep))

    def add(self, reading: MetricsReading) -> None:
        """Append a reading (readings must come in time order)."""
        self._readings.append(reading)

    @property
    def readings(self) -> list[MetricsReading]:
        """The readings kept, oldest first."""
        return list(self._readings)

    @property
    def latest(self) -> MetricsReading | None:
        """The newest reading, if any."""
        return self._readings[-1] if self._readings else None

    def intervals(self) -> list[Interval]:
        """One :class:`Interval` per pair of successive readings, oldest first."""
        readings = self.readings
        return [interval(a, b) for a, b in itertools.pairwise(readings)]
