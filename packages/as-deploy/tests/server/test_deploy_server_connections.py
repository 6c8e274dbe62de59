"""Connections to a real ``as-deploy serve``: latency of kept-alive connections, and
clients that send their headers or body too slowly (or never) do not hold the server.

The requests here are written by hand on raw sockets: a slow or short request is what an
HTTP client library would never send.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import select
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from as_deploy.cli.serve import _bind

PREDICT = "/v1/models/digits-cnn/predict"
DIGIT = json.dumps({"inputs": {"input": [[[[0.5] * 8] * 8]]}}).encode()
TIMEOUT_S = 1.0  # the header and body deadlines of the strict server
SAFETY_S = 20.0  # how long a raw socket waits for an answer before the test gives up


def _head(path: str, length: int, method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _connect(server: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY_S)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response from ``sock``: the status, the headers, the body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (waiting up to the socket's timeout)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _trickle(sock: socket.socket, data: bytes, pause_s: float = 0.05) -> int:
    """Send ``data`` a byte at a time until the server answers or closes; the bytes sent."""
    for sent, byte in enumerate(data):
        readable, _, _ = select.select([sock], [], [], pause_s)
        if readable:
            return sent
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return sent
    return len(data)


def _json_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/json"), (status, headers, body)
    error: dict[str, Any] = json.loads(body)["error"]
    return error


@pytest.fixture(scope="module", params=["httptools", "h11"])
def strict_server(
    request: pytest.FixtureRequest,
    h: Any,
    digits_source: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """A server that gives a client 1 s for its request line and headers, 1 s for a body.

    On each HTTP parser ``as-deploy serve`` runs: every bound holds on both.
    """
    server = h.ServerProcess(
        ["--repo", str(digits_source), "--http", request.param],
        tmp_path_factory.mktemp("strict-server"),
        env={
            "AS_DEPLOY__LIMITS__HEADER_TIMEOUT_S": str(TIMEOUT_S),
            "AS_DEPLOY__LIMITS__BODY_TIMEOUT_S": str(TIMEOUT_S),
            "AS_DEPLOY__DRAIN_GRACE_S": "0",  # stop at once at teardown
        },
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# -- TCP_NODELAY --------------------------------------------------------------------------


def test_deploy_server_accepted_connections_have_nagle_off() -> None:
    sock = _bind("127.0.0.1", 0)

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                raw = transport.get_extra_info("socket")
                accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
            return nodelay

    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert asyncio.run(scenario()) != 0, "Nagle's algorithm is on for accepted connections"
    finally:
        sock.close()


@pytest.mark.timing
@pytest.mark.slow
def test_deploy_server_kept_alive_request_is_not_slower_than_a_new_connection(
    strict_server: Any,
) -> None:
    # Nagle's algorithm holding the second write of a response until the client's delayed
    # ACK made every request on a kept-alive connection ~40 ms, 20x a new connection's.
    kept = http.client.HTTPConnection("127.0.0.1", strict_server.port, timeout=SAFETY_S)

    def once(conn: http.client.HTTPConnection) -> float:
        started = time.perf_counter()
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        return time.perf_counter() - started

    for _ in range(3):
        once(kept)  # warm up
    kept_s: list[float] = []
    new_s: list[float] = []
    for _ in range(30):  # interleaved, so that load on the machine hits both alike
        kept_s.append(once(kept))
        fresh = http.client.HTTPConnection("127.0.0.1", strict_server.port, timeout=SAFETY_S)
        new_s.append(once(fresh))
        fresh.close()
    kept.close()
    ratio = statistics.median(kept_s) / statistics.median(new_s)
    assert ratio < 3, (
        f"a kept-alive request takes {statistics.median(kept_s) * 1000:.2f} ms, a new "
        f"connection's {statistics.median(new_s) * 1000:.2f} ms (x{ratio:.1f})"
    )


# -- slow and short bodies ------------------------------------------------------------------


@pytest.mark.slow
def test_deploy_server_slow_bodies_do_not_take_the_concurrency_slots(
    start_server: Any, digits_source: Path
) -> None:
    # The body deadline is far away: the slow clients are still sending when the normal
    # predict comes. The concurrency limit is the default, 64.
    server = start_server(
        ["--repo", str(digits_source)],
        env={"AS_DEPLOY__LIMITS__BODY_TIMEOUT_S": "300", "AS_DEPLOY__DRAIN_GRACE_S": "0"},
    )
    server.wait_ready()
    slow: list[socket.socket] = []
    try:
        for _ in range(64):
            sock = _connect(server)
            sock.sendall(_head(PREDICT, 1000) + b'{"inputs"')  # the rest never comes
            slow.append(sock)
        # Answered on a connection opened after them: the server has taken them all in.
        assert httpx.get(server.url + "/health", timeout=SAFETY_S).status_code == 200
        response = httpx.post(
            server.url + PREDICT,
            content=DIGIT,
            headers={"content-type": "application/json"},
            timeout=SAFETY_S,
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 1
        for sock in slow:  # still waiting for their bodies, unanswered
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in slow:
            sock.close()


def test_deploy_server_short_body_gets_408_and_the_connection_closes(strict_server: Any) -> None:
    # Content-Length promises 1000 bytes; 50 come, then nothing.
    with _connect(strict_server) as sock:
        sock.sendall(_head(PREDICT, 1000) + b"[" * 50)
        status, headers, body = _response(sock)
        assert status == 408, body
        assert headers["connection"] == "close"
        error = _json_error(status, headers, body)
        assert error["code"] == "body_timeout"
        assert "50 of 1000 bytes" in error["message"], error["message"]
        assert f"{TIMEOUT_S:g} s" in error["message"], error["message"]
        assert _closed_by_server(sock)


def test_deploy_server_trickled_body_gets_408_before_it_is_all_sent(strict_server: Any) -> None:
    body = b" " * (len(DIGIT) * 4) + DIGIT  # 20 bytes a second: far over the 1 s deadline
    with _connect(strict_server) as sock:
        sock.sendall(_head(PREDICT, len(body)))
        sent = _trickle(sock, body)
        assert sent < len(body), "the server waited for the whole trickled body"
        status, headers, answer = _response(sock)
        assert status == 408
        assert _json_error(status, headers, answer)["code"] == "body_timeout"
        assert _closed_by_server(sock)
    # The server goes on serving.
    assert httpx.post(
        strict_server.url + PREDICT, content=DIGIT, headers={"content-type": "application/json"}
    ).is_success


def test_deploy_server_closes_a_connection_trickling_a_refused_body(strict_server: Any) -> None:
    # 413 on the Content-Length at once; the rest of the body may not hold the connection.
    with _connect(strict_server) as sock:
        sock.sendall(_head(PREDICT, 64 * 1024 * 1024) + b"[")
        status, headers, body = _response(sock)
        assert status == 413
        assert _json_error(status, headers, body)["code"] == "body_too_large"
        rest = b"0.5," * 100
        sent = _trickle(sock, rest)
        assert sent < len(rest), "the server read the refused body for as long as it came"
        assert _closed_by_server(sock)


# -- slow, missing and oversized headers --------------------------------------------------


def test_deploy_server_closes_a_connection_that_sends_nothing(strict_server: Any) -> None:
    with _connect(strict_server) as sock:
        assert _closed_by_server(sock), f"the idle connection was still open after {SAFETY_S} s"


def test_deploy_server_trickled_headers_get_408_and_the_connection_closes(
    strict_server: Any,
) -> None:
    with _connect(strict_server) as sock:
        # A first request is answered; the deadline of the next one starts after it.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        status, headers, _ = _response(sock)
        assert status == 200
        head = b"GET /health HTTP/1.1\r\nHost: test\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
        sent = _trickle(sock, head)
        assert sent < len(head), "the server waited for the whole trickled header"
        status, headers, body = _response(sock)
        assert status == 408
        assert headers["connection"] == "close"
        error = _json_error(status, headers, body)
        assert error["code"] == "header_timeout"
        assert f"{TIMEOUT_S:g} s" in error["message"], error["message"]
        assert _closed_by_server(sock)


def test_deploy_server_oversized_headers_get_a_json_error(strict_server: Any) -> None:
    with _connect(strict_server) as sock:
        # Over the 16 KiB limit, and never finished: all of it is read before the answer.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 20 * 1024)
        status, headers, body = _response(sock)
        assert status == 431, body
        error = _json_error(status, headers, body)
        assert error["code"] == "headers_too_large"
        assert "16384 bytes" in error["message"], error["message"]
        assert headers["connection"] == "close"
    with _connect(strict_server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = _response(sock)
        assert status == 400
        assert _json_error(status, headers, body)["code"] == "bad_request"
