"""``as-deploy serve`` as a user runs it: a real uvicorn process on a free port."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

EMBEDDED_MANIFEST = Path("digits-cnn") / "1" / "manifest.json"


@pytest.mark.slow
def test_deploy_server_serves_the_embedded_model_like_a_user_sees_it(
    h: Any, start_server: Any, digits_data: tuple[np.ndarray, np.ndarray]
) -> None:
    if not (h.EMBEDDED / EMBEDDED_MANIFEST).is_file():
        pytest.skip(f"the embedded default model is not generated yet ({h.EMBEDDED})")
    # No --repo: the default model shipped in the package. The environment lowers the body
    # limit so that a chunked upload over it stays small.
    server = start_server([], env={"AS_DEPLOY__LIMITS__MAX_BODY_BYTES": "262144"})
    server.wait_ready()
    images, labels = digits_data
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        models = client.get("/v1/models").json()["models"]
        assert [m["name"] for m in models] == ["digits-cnn"]
        # One image per request, as a client classifying pictures would send them. The model
        # is good, not perfect (about 97% on held-out digits): most labels must be right.
        right = 0
        for index in range(40):
            response = client.post(
                "/v1/models/digits-cnn/predict",
                json={"inputs": {"input": images[index : index + 1].tolist()}},
            )
            assert response.status_code == 200, response.text
            (prediction,) = response.json()["predictions"]
            right += prediction["label"] == str(labels[index])
            assert 0.0 < prediction["score"] <= 1.0
        assert right >= 36, f"only {right} of 40 digits were labelled right"

        def chunks() -> Iterator[bytes]:
            yield b'{"inputs": {"input": '
            for _ in range(100):
                yield b"[" + b"0.5," * 1000 + b"0.5],"  # 400 KB in all, no Content-Length

        too_big = client.post(
            "/v1/models/digits-cnn/predict",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "body_too_large"
        deep = client.post(
            "/v1/models/digits-cnn/predict",
            content=b"[" * 100_000,
            headers={"content-type": "application/json"},
        )
        assert deep.status_code == 400 and deep.json()["error"]["code"] == "too_deep"
        after = client.post(
            "/v1/models/digits-cnn/predict", json={"inputs": {"input": images[:2].tolist()}}
        )
        assert after.status_code == 200

        metrics = client.get("/metrics").text
        assert (
            h.metric_value(metrics, "as_deploy_requests_total", model="digits-cnn", code="200")
            == 41
        )
        assert (
            h.metric_value(metrics, "as_deploy_requests_total", model="digits-cnn", code="413") == 1
        )
        schema = client.get("/openapi.json").json()
        assert "/v1/models/{name}/predict" in schema["paths"]
    server.stop()
    assert server.process.returncode == 0, server.output()
    output = server.output()
    assert f"as-deploy serve: http://127.0.0.1:{server.port}" in output
    assert "digits-cnn/1" in output
    assert "POST /v1/models/digits-cnn/predict 200" in output  # the access log


@pytest.mark.slow
def test_deploy_server_sigterm_under_load_finishes_in_flight_requests(
    h: Any, start_server: Any, repo: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    server = start_server(
        ["--repo", str(repo), "--log-dir", str(logs)],
        env={
            "AS_DEPLOY__GRACEFUL_TIMEOUT_S": "20",
            "AS_DEPLOY__PRELOAD": '["digits-cnn", "slow-mlp"]',
        },
    )
    server.wait_ready()
    body = {"inputs": {"input": (np.arange(32 * 64).reshape(32, 1, 8, 8) % 17 / 16).tolist()}}
    slow_body = {"inputs": {"x": np.linspace(-1, 1, 1024 * 64).reshape(1024, 64).round(3).tolist()}}
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    slow_result: dict[str, Any] = {}
    lock = threading.Lock()
    started = threading.Barrier(6)
    IN_FLIGHT = "as_deploy_in_flight_requests"

    def client_loop() -> None:
        started.wait()
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.post("/v1/models/digits-cnn/predict", json=body)
                except httpx.ConnectError:
                    with lock:
                        failures["ConnectError"] += 1
                    return  # the server no longer accepts connections: it is going away
                except httpx.TransportError as exc:
                    with lock:
                        failures[type(exc).__name__] += 1
                    continue
                with lock:
                    statuses[response.status_code] += 1

    def slow_request() -> None:
        # One long inference (seconds for 1024 rows) that is surely in flight at SIGTERM.
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post("/v1/models/slow-mlp/predict", json=slow_body)
        slow_result["status"] = response.status_code
        slow_result["rows"] = len(response.json().get("outputs", {}).get("y", []))
        slow_result["at"] = time.monotonic()
        with lock:
            statuses[response.status_code] += 1

    threads = [threading.Thread(target=client_loop) for _ in range(5)]
    for thread in threads:
        thread.start()  # they wait at the barrier until the slow request is in flight
    slow = threading.Thread(target=slow_request)
    slow.start()

    def in_flight() -> float:
        return float(h.metric_value(httpx.get(server.url + "/metrics").text, IN_FLIGHT))

    # Signals, not guesses at delays: the slow request is in flight (the only predict so
    # far), then the clients run until two answers have come back, then SIGTERM.
    deadline = time.monotonic() + 60
    while in_flight() < 1:
        assert time.monotonic() < deadline, "the slow request never reached the server"
        time.sleep(0.01)
    started.wait()
    while True:
        with lock:
            if statuses[200] >= 2:
                break
        assert time.monotonic() < deadline, f"the clients got no answers: {statuses}"
        time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    sigterm_at = time.monotonic()
    returncode = server.process.wait(timeout=30)
    stopped_in = time.monotonic() - sigterm_at
    for thread in [*threads, slow]:
        thread.join(timeout=60)
    assert returncode == 0, server.output()
    assert stopped_in < 20
    # The request in flight at SIGTERM finished, with its answer.
    assert slow_result["status"] == 200, slow_result
    assert slow_result["rows"] == 1024
    assert slow_result["at"] > sigterm_at

    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 1
    # Each request the app took in was answered and the answer reached its client: the
    # server's access log and the clients agree on the count. Transport errors happen only
    # for requests the server never took in (the listener closed, an idle connection shut).
    records = [
        json.loads(line)
        for path in logs.glob("*.jsonl*")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    access = [r for r in records if r["logger"] == "as_deploy.server.access"]
    predicts = [r for r in access if r["extra"]["http"]["path"].endswith("/predict")]
    answered = Counter(r["extra"]["http"]["status"] for r in predicts)
    assert answered == statuses, (answered, statuses, failures)
    assert set(failures) <= {"ConnectError", "RemoteProtocolError", "ReadError"}, failures
