"""Prometheus metrics of one app, in a registry of its own (never the global one).

Under ``as-deploy serve --workers N`` each worker process runs with
``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's multiprocess mode): the values go to
files in that folder and :meth:`Metrics.render` sums them over every worker, the gauges
over the live ones.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The server's metrics; :meth:`render` gives the Prometheus text format.

    Attributes:
        multiprocess: Whether the values are shared with other worker processes
            (``PROMETHEUS_MULTIPROC_DIR``); a labelled series cannot be removed then.
        registry: The app's own registry, so that two apps in one process never mix.
        requests: Predict requests by model and HTTP status code.
        latency: Predict request latency in seconds by model and status code.
        batch_rows: Rows per inference, by model.
        batch_requests: Requests per inference, by model (more than one: batching worked).
        inference_seconds: Time of one inference, by model.
        queue_depth: Requests waiting for a batch, by model.
        in_flight: Predict requests in flight.
        loaded_models: Model versions loaded now.
        model_load_failures: Failed model loads, by model.
        model_loads: Model loads started (a runtime opening a verified version), by model.
    """

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        # Series of these are never removed: each is kept once made.
        self._request_series: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._inference_series: dict[str, tuple[Any, Any, Any]] = {}
        registry = self.registry
        self.requests = Counter(
            "as_deploy_requests",
            "Predict requests by model and HTTP status code.",
            ["model", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "as_deploy_request_duration_seconds",
            "Predict request latency by model and HTTP status code.",
            ["model", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "as_deploy_batch_size",
            "Rows (batch size) of each inference, by model.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "as_deploy_batch_requests",
            "Requests merged into each inference, by model.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "as_deploy_inference_duration_seconds",
            "Time of one inference, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "as_deploy_queue_depth",
            "Requests waiting to be batched, by model.",
            ["model"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "as_deploy_in_flight_requests",
            "Predict requests in flight.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.loaded_models = Gauge(
            "as_deploy_loaded_models",
            "Model versions loaded now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.model_load_failures = Counter(
            "as_deploy_model_load_failures",
            "Model loads that failed, by model.",
            ["model"],
            registry=registry,
        )
        self.model_loads = Counter(
            "as_deploy_model_loads",
            "Model loads started (a runtime opening a verified version), by model.",
            ["model"],
            registry=registry,
        )

    def request_series(self, model: str, status: int) -> tuple[Any, Any]:
        """The ``requests`` and ``latency`` series of ``model`` and ``status``.

        Kept once made: looking a labelled series up again takes a lock and a tuple of
        the label values every time, and this runs for every request.
        """
        key = (model, status)
        series = self._request_series.get(key)
        if series is None:
            code = str(status)
            series = (self.requests.labels(model, code), self.latency.labels(model, code))
            self._request_series[key] = series
        return series

    def inference_series(self, model: str) -> tuple[Any, Any, Any]:
        """The ``inference_seconds``, ``batch_rows`` and ``batch_requests`` of ``model``.

        Kept once made, as in :meth:`request_series`.
        """
        series = self._inference_series.get(model)
        if series is None:
            series = (
                self.inference_seconds.labels(model),
                self.batch_rows.labels(model),
                self.batch_requests.labels(model),
            )
            self._inference_series[model] = series
        return series

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format (of every worker)."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
