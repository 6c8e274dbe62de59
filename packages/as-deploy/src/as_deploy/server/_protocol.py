"""Connections of ``as-deploy serve``: uvicorn's HTTP/1.1 protocol and server, bounded.

:func:`protocol_class` makes uvicorn's HTTP/1.1 protocol (httptools, the fast C parser,
where it is installed; else h11) with

- a deadline for a request's line and headers (``limits.header_timeout_s``), counted
  from the connection's start or the end of the previous response: a client that sends
  them a byte at a time gets 408 and the connection is closed; one that sent nothing is
  closed without an answer;
- JSON errors like the app's for a request that is not HTTP (400) or whose request line
  and headers are over the size limit (431; 16 KiB unless uvicorn's
  ``h11_max_incomplete_event_size`` says otherwise), instead of uvicorn's plain text;
- Nagle's algorithm off on every connection (``TCP_NODELAY``): a response is written in
  two parts, and the second must not wait for the client's delayed ACK (40 ms);
- ``Connection: close`` on every response while the server drains, so that kept-alive
  clients open new connections, which a load balancer sends elsewhere.

:class:`DrainingServer` stops gracefully: on SIGTERM ``/ready`` answers 503 at once while
everything is still accepted and served for ``drain_grace_s``; then it stops accepting,
after taking in the connections the kernel already accepted (closing the listener with
them waiting would reset them); then it closes the idle kept-alive connections, lets
every connection that is sending a request finish it, answers every request it took in
(up to ``graceful_timeout_s``) and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import signal
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar, Literal

import h11
import uvicorn
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import H11Protocol

from as_deploy.exceptions import ServerError
from as_deploy.server._middleware import RequestTimeoutError
from as_deploy.server._state import ServerState

__all__ = ["DrainingServer", "ServerProtocol", "fast_stack_available", "protocol_class"]

logger = logging.getLogger(__name__)


def _error_bytes(status: int, error: ServerError) -> bytes:
    """A whole HTTP/1.1 response carrying ``error`` as JSON, closing the connection."""
    body = json.dumps(error.body()).encode()
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _nodelay(transport: asyncio.BaseTransport) -> None:
    raw = transport.get_extra_info("socket")
    if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _bytes_waiting(transport: asyncio.BaseTransport) -> bool:
    """Whether the connection's socket holds bytes not read yet."""
    raw = transport.get_extra_info("socket")
    try:
        probe = socket.socket(fileno=raw.fileno())
    except (AttributeError, OSError, TypeError):  # no socket, or no longer one
        return False
    try:
        return bool(probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing to read (BlockingIOError), or the connection is gone
        return False
    finally:
        probe.detach()  # the fd stays the transport's


def _header_timeout_error(timeout_s: float, arrived: int) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the request line and headers did not arrive within {timeout_s:g} s "
        f"({arrived} bytes came)",
        code="header_timeout",
        detail={"header_timeout_s": timeout_s, "received_bytes": arrived},
    )


def _headers_too_large(limit: int) -> ServerError:
    return ServerError(
        f"the request line and headers are over {limit} bytes",
        code="headers_too_large",
        detail={"max_header_bytes": limit},
    )


class _HeaderDeadline(ABC):
    """What both protocol subclasses add alike: the limits they read and the deadline.

    A mixin, first in their bases; each defines ``_header_timeout``.
    """

    config: uvicorn.Config
    loop: asyncio.AbstractEventLoop
    state: ClassVar[ServerState | None] = None

    def _init_bounds(self) -> None:
        size = self.config.h11_max_incomplete_event_size
        self.max_header_bytes = size if size is not None else DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        limits = self.state.settings.limits if self.state is not None else None
        self.header_timeout_s = limits.header_timeout_s if limits is not None else 10.0
        self.header_timer: asyncio.TimerHandle | None = None
        self.served = 0
        self.stopping = False

    @abstractmethod
    def _header_timeout(self) -> None:
        """Answer 408 and close: the request's headers missed their deadline."""

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self.header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None


class _Connection(h11.Connection):
    """An h11 connection that remembers the last protocol error the client made."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        """Return the next event, remembering the error when the client's bytes are bad."""
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class ServerProtocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a header deadline, JSON errors and draining.

    The pure-Python stack, used where httptools is not installed (or
    ``http: h11`` asks for it); :class:`HttpToolsServerProtocol` does the same on
    httptools.

    Use :func:`protocol_class` for a subclass bound to the app's state; uvicorn creates
    one instance per connection.

    Attributes:
        state: The app's state: the header deadline (``limits.header_timeout_s``) and
            whether the server is draining (every response then closes).
    """

    state: ClassVar[ServerState | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the protocol for one connection (uvicorn's arguments)."""
        super().__init__(*args, **kwargs)
        self._init_bounds()
        self.conn = _Connection(h11.SERVER, self.max_header_bytes)

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
        """Feed the bytes to h11; a request whose headers are all in stops the deadline."""
        super().data_received(data)
        self._after_events()

    def on_response_complete(self) -> None:
        """Count the response; the next request's header deadline starts now."""
        self.served += 1
        if not self.transport.is_closing():
            self._start_header_timer()
        super().on_response_complete()  # may start a pipelined request
        self._after_events()

    def send_400_response(self, msg: str) -> None:
        """Answer bytes that are not a valid request with a JSON error and close."""
        error = self.conn.last_error if isinstance(self.conn, _Connection) else None
        status = error.error_status_hint if error is not None else 400
        if status == 431:
            answer = _headers_too_large(self.max_header_bytes)
        else:
            status = status if status in (400, 501) else 400
            reason = f": {error}" if error is not None and str(error) else ""
            answer = ServerError(f"the request is not valid HTTP/1.1{reason}", code="bad_request")
        self._cancel_header_timer()
        self.transport.write(_error_bytes(status, answer))
        self.transport.close()

    def shutdown(self) -> None:
        """Close the connection when idle, else once the request on its way is answered.

        A connection that has not sent its first request yet, or whose next request is
        arriving, gets it answered (within the header deadline); an idle kept-alive
        connection is closed at once.
        """
        self.stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            self._close_after_response()
        elif self.served and not self._request_arriving():
            super().shutdown()

    # -- the header deadline and closing

    def _waiting_for_request(self) -> bool:
        """Whether no request is being served: none begun, or its answer already sent.

        An answer can go out before the request's body is all in (413 on its
        ``Content-Length``); the rest of the body is read and dropped, within the deadline
        of the next request.
        """
        return self.conn.their_state is h11.IDLE or self.conn.our_state in (
            h11.DONE,
            h11.MUST_CLOSE,
        )

    def _after_events(self) -> None:
        if self._waiting_for_request():
            return
        self._cancel_header_timer()  # the request line and headers are in
        if self.stopping or (self.state is not None and self.state.draining):
            self._close_after_response()

    def _close_after_response(self) -> None:
        """Make the response of the current request say ``Connection: close`` and close."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        headers = cycle.scope["headers"]
        if not cycle.response_started and isinstance(headers, list) and CLOSE_HEADER not in headers:
            # uvicorn adds Connection: close to the response of a request that has it.
            headers.append(CLOSE_HEADER)
        cycle.keep_alive = False

    def _request_arriving(self) -> bool:
        """Whether some bytes of a next request are here: buffered, or in the socket."""
        return bool(self.conn.trailing_data[0]) or _bytes_waiting(self.transport)

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or not self._waiting_for_request():
            return
        arrived = len(self.conn.trailing_data[0])
        if arrived and self.conn.their_state is h11.IDLE:
            error = _header_timeout_error(self.header_timeout_s, arrived)
            self.transport.write(_error_bytes(error.status_code, error))
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def fast_stack_available() -> bool:
    """Whether httptools and uvloop are installed (``http: auto`` then uses them)."""
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def protocol_class(
    state: ServerState, http: Literal["httptools", "h11"] = "h11"
) -> type[asyncio.Protocol]:
    """Return the server's protocol on the ``http`` parser, bound to the app's ``state``.

    Pass it to :class:`uvicorn.Config` as ``http=``.
    """
    base: type[asyncio.Protocol]
    if http == "httptools":
        # httptools is optional: imported only when asked for.
        from as_deploy.server._protocol_httptools import HttpToolsServerProtocol

        base = HttpToolsServerProtocol
    else:
        base = ServerProtocol
    return type(f"Bound{base.__name__}", (base,), {"state": state})


class DrainingServer(uvicorn.Server):
    """uvicorn's server that drains before it stops accepting connections.

    Args:
        config: uvicorn's configuration.
        grace_s: On SIGTERM, how long to go on accepting and serving everything.
        on_signal: Called (in the signal handler) when a stop signal arrives; it turns
            ``/ready`` to 503.
    """

    def __init__(
        self, config: uvicorn.Config, *, grace_s: float, on_signal: Callable[[], None]
    ) -> None:
        """Create the server."""
        super().__init__(config)
        self.grace_s = grace_s
        self.on_signal = on_signal
        self.grace = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the drain: a first SIGTERM waits the grace period; anything else ends it."""
        self.on_signal()
        self.grace = sig == signal.SIGTERM and not self.should_exit
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Wait the grace period, take in the waiting connections, then shut down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_s
        if self.grace and self.grace_s > 0:
            logger.info(
                "draining: /ready answers 503; serving %g s more before no longer accepting",
                self.grace_s,
            )
        ticks = 0
        while self.grace and not self.force_exit and loop.time() < deadline:
            await self.on_tick(ticks)  # keeps the Date header current
            ticks += 1
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
        await self._take_in_waiting(sockets or [])
        await super().shutdown(sockets=sockets)

    async def _take_in_waiting(self, sockets: list[socket.socket]) -> None:
        """Stop accepting: accept what the kernel holds, close the listeners, serve those.

        The accepting and the closing happen with no ``await`` between them: a client
        whose connection the kernel completes in the microseconds between the last accept
        and the close is the only one the close can reset.
        """
        loop = asyncio.get_running_loop()
        accepted: list[socket.socket] = []
        for sock in sockets:
            if sock.fileno() < 0:
                continue
            loop.remove_reader(sock.fileno())  # asyncio accepts no more
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:  # BlockingIOError: none left
                    break
                accepted.append(conn)
        for server in self.servers:
            server.close()  # closes the listening sockets

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=loop,
            )
            return protocol

        for conn in accepted:
            try:
                await loop.connect_accepted_socket(create_protocol, conn)
            except OSError:
                conn.close()
