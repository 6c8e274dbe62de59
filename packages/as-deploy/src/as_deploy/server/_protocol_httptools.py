"""``as-deploy serve``'s connections on httptools: the same bounds as on h11, faster.

:class:`HttpToolsServerProtocol` is uvicorn's httptools protocol with what
:class:`~as_deploy.server._protocol.ServerProtocol` adds to h11's: the deadline for a
request's line and headers, JSON errors for bytes that are not HTTP (400) and for a
request line and headers over the size limit (431: httptools itself has no limit),
Nagle's algorithm off, and ``Connection: close`` on every response while the server
drains. Imported only when httptools is used (``http: auto`` with httptools and uvloop
installed, or ``http: httptools``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from as_deploy.exceptions import ServerError
from as_deploy.server._protocol import (
    _bytes_waiting,
    _error_bytes,
    _header_timeout_error,
    _HeaderDeadline,
    _headers_too_large,
    _nodelay,
)
from as_deploy.server._state import ServerState

__all__ = ["HttpToolsServerProtocol"]


class _HeadersTooLargeError(Exception):
    """Raised from a parser callback: the request line and headers passed the limit."""


class HttpToolsServerProtocol(_HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and limit, JSON errors, draining.

    Use :func:`~as_deploy.server._protocol.protocol_class` for a subclass bound to the
    app's state; uvicorn creates one instance per connection.

    Attributes:
        state: The app's state: the header deadline (``limits.header_timeout_s``) and
            whether the server is draining (every response then closes).
    """

    state: ClassVar[ServerState | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the protocol for one connection (uvicorn's arguments)."""
        super().__init__(*args, **kwargs)
        self._init_bounds()
        # Whether a request has begun and its headers are not all in yet; the bytes of its
        # line and headers the parser has taken whole (head_bytes), and the bytes that
        # came since it began (arrived: httptools holds a header being sent until it ends).
        self.in_head = False
        self.head_bytes = 0
        self.arrived = 0

    # -- uvicorn's protocol interface

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Take the connection: Nagle's algorithm off, the header deadline running."""
        super().connection_made(transport)
        _nodelay(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (and its deadline)."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the bytes to the parser; bytes that are not HTTP get a JSON 400 (or 431)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
            if self.in_head:
                self.arrived += len(data)
                if self.arrived > self.max_header_bytes:
                    self._refuse(431, _headers_too_large(self.max_header_bytes))
        except httptools.HttpParserUpgrade:
            # The server has no WebSocket routes; uvicorn upgrades only when it can.
            if self._should_upgrade():
                self.handle_websocket_upgrade()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLargeError) or self.head_bytes > (
                self.max_header_bytes
            ):
                self._refuse(431, _headers_too_large(self.max_header_bytes))
            else:
                reason = f": {exc}" if str(exc) else ""
                self._refuse(
                    400,
                    ServerError(f"the request is not valid HTTP/1.1{reason}", code="bad_request"),
                )

    def send_400_response(self, msg: str) -> None:
        """Answer bytes that are not a valid request with a JSON error and close."""
        self._refuse(
            400, ServerError(f"the request is not valid HTTP/1.1: {msg}", code="bad_request")
        )

    def on_message_begin(self) -> None:
        """A request begins: its line and headers are counted until they are all in."""
        self.in_head = True
        self.head_bytes = 0
        self.arrived = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Take part of the request target, within the size limit."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Take one header, within the size limit."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The headers are in: the deadline stops; while draining, the answer closes."""
        self.in_head = False
        self._cancel_header_timer()
        super().on_headers_complete()
        if self.stopping or (self.state is not None and self.state.draining):
            self._close_after_response()

    def on_response_complete(self) -> None:
        """Count the response; the next request's header deadline starts now."""
        self.served += 1
        if not self.transport.is_closing():
            self._start_header_timer()
        super().on_response_complete()  # may start a pipelined request
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_header_timer()  # a pipelined request is being served

    def shutdown(self) -> None:
        """Close the connection when idle, else once the request on its way is answered.

        A connection that has not sent its first request yet, or whose next request is
        arriving, gets it answered (within the header deadline); an idle kept-alive
        connection is closed at once.
        """
        self.stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            self._close_after_response()
        elif self.served and not (self.in_head or _bytes_waiting(self.transport)):
            super().shutdown()

    # -- the header deadline, the limit and closing

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.max_header_bytes:
            raise _HeadersTooLargeError

    def _refuse(self, status: int, error: ServerError) -> None:
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self.transport.write(_error_bytes(status, error))
            self.transport.close()

    def _close_after_response(self) -> None:
        """Make the response of the current request say ``Connection: close`` and close."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # the response then says Connection: close

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served
        if self.in_head:
            arrived = max(self.arrived, self.head_bytes)
            error = _header_timeout_error(self.header_timeout_s, arrived)
            self.transport.write(_error_bytes(error.status_code, error))
        with contextlib.suppress(Exception):
            self.transport.close()
