"""Pure ASGI middleware: the access log and metrics, the body limit, the concurrency limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so that the body limit sees the request stream
itself: it counts the bytes of every chunk as they arrive, so a chunked body without a
``Content-Length`` is refused as soon as it passes the limit, without being held whole.
The body is read whole, within ``limits.body_timeout_s``, before the request counts
against the concurrency limit: a client that sends its body slowly holds no slot.
"""

from __future__ import annotations

import asyncio
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
    "BODY_SCOPE_KEY",
    "MODEL_SCOPE_KEY",
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "ConcurrencyLimitMiddleware",
    "RequestTimeoutError",
    "send_error",
]

access_logger = logging.getLogger("as_deploy.server.access")

MODEL_SCOPE_KEY = "as_deploy.model"
"""Scope key where the predict route records the model it served, for metrics."""

BODY_SCOPE_KEY = "as_deploy.body"
"""Scope key where :class:`BodyLimitMiddleware` leaves the whole body it read."""


class RequestTimeoutError(ServerError):
    """408: the request's headers or body did not arrive in time; the connection closes."""

    status_code = 408
    default_code = "request_timeout"


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
        recorded = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Counted before the answer's last bytes go out: a client that has
                    # its answer finds it in /metrics, even if the process dies next.
                    recorded = True
                    self._record(scope, status, sent, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not recorded:
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
            requests, latency = self.state.metrics.request_series(model, status)
            requests.inc()
            latency.observe(seconds)
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
        # While the server drains (state.draining) the requests it takes in are still
        # served: the models refuse work only once they are closed.
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
    """Reads the body whole within ``limits.body_timeout_s`` and ``limits.max_body_bytes``.

    A ``Content-Length`` over the limit is refused with 413 before the body is read;
    otherwise the chunks are counted as they arrive (413 past the limit). A body that is
    not all there by the deadline (sent too slowly, or shorter than its
    ``Content-Length``) gets 408 with ``Connection: close``. The body is replayed to the
    app.

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

    async def _read(self, receive: Receive, declared: int | None) -> bytes | ServerError | None:
        """The whole body; the error to answer with; ``None`` if the client left."""
        limits = self.state.settings.limits
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(limits.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > limits.max_body_bytes:
                        return self._too_large(f"over {limits.max_body_bytes} bytes (streamed)")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            expected = f" of {declared}" if declared is not None else ""
            return RequestTimeoutError(
                f"the request body did not arrive within {limits.body_timeout_s:g} s "
                f"({received}{expected} bytes came)",
                code="body_timeout",
                detail={"body_timeout_s": limits.body_timeout_s, "received_bytes": received},
                headers={"Connection": "close"},
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limits, then run the app on it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.limits.max_body_bytes
        length: int | None = None
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
        body = await self._read(receive, length)
        if isinstance(body, ServerError):
            await send_error(send, body)
            return
        if body is None:
            return  # the client left; there is no one to answer
        scope[BODY_SCOPE_KEY] = body  # the routes take it from here, without a stream
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
