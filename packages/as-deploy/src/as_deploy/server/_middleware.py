"""Pure ASGI middleware: the access log and metrics, the concurrency limit, the body limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so that the body limit sees the request stream
itself: it counts the bytes of every chunk as they arrive, so a chunked body without a
``Content-Length`` is refused as soon as it passes the limit, without being held whole.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from as_deploy.exceptions import (
    BadRequestError,
    OverloadedError,
    PayloadTooLargeError,
    ServerError,
)
from as_deploy.server._state import ServerState

__all__ = [
    "MODEL_SCOPE_KEY",
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "ConcurrencyLimitMiddleware",
    "send_error",
]

access_logger = logging.getLogger("as_deploy.server.access")

MODEL_SCOPE_KEY = "as_deploy.model"
"""Scope key where the predict route records the model it served, for metrics."""

_PREDICT = re.compile(  # /v1 predictions and /v2 (Open Inference Protocol) inferences
    r"^/v1/models/(?P<v1>[^/]+)/predict/?$|^/v2/models/(?P<v2>[^/]+)(?:/versions/[^/]+)?/infer/?$"
)


async def send_error(send: Send, error: ServerError) -> None:
    """Send ``error`` as a complete JSON response."""
    body = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(
            (key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in error.headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _predict_model(scope: Scope) -> str | None:
    match = _PREDICT.match(scope.get("path", ""))
    return (match.group("v1") or match.group("v2")) if match else None


class AccessLogMiddleware:
    """Logs one structured line per request and records predict metrics.

    Args:
        app: The wrapped app.
        state: The server state (metrics, settings).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Wrap ``app``."""
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then log it and count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, sent, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, sent: int, seconds: float) -> None:
        path_model = _predict_model(scope)
        model: str | None = None
        if path_model is not None:
            model = scope.get(MODEL_SCOPE_KEY)
            if model is None:
                # Only names the repository has are labels: a client must not be able to
                # create a metric series per made-up name.
                known = self.state.models.known_names if self.state.models else set()
                model = path_model if path_model in known else "_other"
            metrics = self.state.metrics
            metrics.requests.labels(model, str(status)).inc()
            metrics.latency.labels(model, str(status)).observe(seconds)
        if not self.state.settings.access_log:
            return
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "bytes_sent": sent,
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        if model is not None:
            fields["model"] = model
        access_logger.info(
            "%s %s %d %.1fms",
            fields["method"],
            fields["path"],
            status,
            seconds * 1000,
            extra={"http": fields},
        )


class ConcurrencyLimitMiddleware:
    """Answers 503 with ``Retry-After`` at once when too many predictions are in flight.

    Args:
        app: The wrapped app.
        state: The server state (the counter and the limit).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Wrap ``app``."""
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the predict request in, or refuse it."""
        if scope["type"] != "http" or _predict_model(scope) is None:
            await self.app(scope, receive, send)
            return
        state = self.state
        limits = state.settings.limits
        retry = {"Retry-After": str(limits.retry_after_s)}
        if state.draining:
            await send_error(
                send,
                OverloadedError("the server is shutting down", code="shutting_down", headers=retry),
            )
            return
        if state.in_flight >= limits.max_concurrency:
            await send_error(
                send,
                OverloadedError(
                    f"too many requests in flight (the limit is {limits.max_concurrency}); "
                    f"retry after {limits.retry_after_s} s",
                    code="overloaded",
                    detail={"max_concurrency": limits.max_concurrency},
                    headers=retry,
                ),
            )
            return
        state.in_flight += 1
        state.metrics.in_flight.set(state.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            state.in_flight -= 1
            state.metrics.in_flight.set(state.in_flight)


class BodyLimitMiddleware:
    """Refuses bodies over ``limits.max_body_bytes`` with 413, counting streamed bytes.

    A ``Content-Length`` over the limit is refused before the body is read; otherwise the
    chunks are counted as they arrive. The body read so far is replayed to the app.

    Args:
        app: The wrapped app.
        state: The server state (the limit).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Wrap ``app``."""
        self.app = app
        self.state = state

    def _too_large(self, size: str) -> PayloadTooLargeError:
        limit = self.state.settings.limits.max_body_bytes
        return PayloadTooLargeError(
            f"the request body is {size}; the limit is {limit} bytes",
            code="body_too_large",
            detail={"max_body_bytes": limit},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limit, then run the app on it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.limits.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_error(send, BadRequestError("the Content-Length header is not a number"))
                return
            if length > limit:
                await send_error(send, self._too_large(f"{length} bytes (Content-Length)"))
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; there is no one to answer
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await send_error(send, self._too_large(f"over {limit} bytes (streamed)"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
