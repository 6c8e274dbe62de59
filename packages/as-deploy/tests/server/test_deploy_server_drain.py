"""SIGTERM under load: ``/ready`` turns 503, serving goes on for the grace period, then the
server stops accepting, answers every request it took in, and exits 0.

The clients use ``http.client``, which tells a request that could not be sent (the
connection was refused: the server is gone, the client knows it) from one that was sent
whole and then got no answer (a reset, a close): the second kind must never happen.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

PREDICT = "/v1/models/digits-cnn/predict"
DIGIT = json.dumps({"inputs": {"input": [[[[0.5] * 8] * 8]]}}).encode()
HEADERS = {"Content-Type": "application/json"}
GRACE_S = 0.5


class _Load:
    """Client threads against one server, and what they saw."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sigterm_at: float | None = None
        self.statuses: Counter[int] = Counter()
        self.after_sigterm: Counter[int] = Counter()
        self.dropped: list[str] = []  # requests sent whole that got no answer
        self.ready: list[int | str] = []  # /ready answers in order, then "refused"

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def exchange(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None
    ) -> int | None:
        """One request: its status, or ``None`` when it could not be sent (refused)."""
        try:
            conn.request(method, path, body=body, headers=HEADERS if body else {})
        except OSError:
            conn.close()
            return None  # not sent: the listener is closed
        try:
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            with self.lock:
                self.dropped.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return -1
        if response.will_close:
            conn.close()
        return response.status

    def record(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            if self.sigterm_at is not None:
                self.after_sigterm[status] += 1

    def keep_alive_client(self) -> None:
        conn = self.connection()  # reused while the server keeps it open
        while not self.stop.is_set():
            status = self.exchange(conn, "POST", PREDICT, DIGIT)
            if status is None:
                return
            if status > 0:
                self.record(status)

    def new_connection_client(self) -> None:
        while not self.stop.is_set():
            conn = self.connection()
            status = self.exchange(conn, "POST", PREDICT, DIGIT)
            conn.close()
            if status is None:
                return
            if status > 0:
                self.record(status)

    def ready_poller(self) -> None:
        while not self.stop.is_set():
            conn = self.connection()
            status = self.exchange(conn, "GET", "/ready", None)
            conn.close()
            with self.lock:
                self.ready.append("refused" if status is None else status)
            if status is None:
                return
            time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_deploy_server_sigterm_drains_without_dropping_a_sent_request(
    start_server: Any, digits_source: Path, http: str
) -> None:
    server = start_server(
        ["--repo", str(digits_source), "--http", http],
        env={"AS_DEPLOY__DRAIN_GRACE_S": str(GRACE_S), "AS_DEPLOY__GRACEFUL_TIMEOUT_S": "20"},
    )
    server.wait_ready()
    load = _Load(server.port)
    threads = [
        *(threading.Thread(target=load.keep_alive_client) for _ in range(3)),
        *(threading.Thread(target=load.new_connection_client) for _ in range(3)),
        threading.Thread(target=load.ready_poller),
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while True:  # every kind of client is getting answers
            with load.lock:
                if load.statuses[200] >= 30 and 200 in load.ready:
                    load.sigterm_at = time.monotonic()
                    break
            assert time.monotonic() < deadline, f"no answers under load: {load.statuses}"
            time.sleep(0.01)
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=60)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert returncode == 0, server.output()
    assert load.dropped == [], f"{len(load.dropped)} sent requests got no answer: {load.dropped}"
    # Serving went on after the signal, and every predict was answered with a result.
    assert set(load.statuses) == {200}, load.statuses
    assert load.after_sigterm[200] > 0, load.after_sigterm
    # /ready said 503 before the server stopped taking connections.
    assert load.ready[-1] == "refused", load.ready[-5:]
    assert 503 in load.ready, load.ready[-5:]
    first_503 = load.ready.index(503)
    assert all(status == 503 for status in load.ready[first_503:-1]), load.ready[first_503:]
