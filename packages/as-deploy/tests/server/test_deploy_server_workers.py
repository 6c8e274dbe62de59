"""``as-deploy serve --workers N``: several server processes behind one port."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process tree from /proc"
)

MODEL = Path("digits-cnn") / "1" / "model.onnx"


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _predict_each_on_new_connection(url: str, images: np.ndarray) -> np.ndarray:
    logits = []
    for index in range(len(images)):
        # A new connection per request: the kernel hands each to whichever worker accepts.
        response = httpx.post(
            url + "/v1/models/digits-cnn/predict",
            json={"inputs": {"input": images[index : index + 1].tolist()}},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        logits.append(response.json()["outputs"]["logits"][0])
    return np.asarray(logits, dtype=np.float32)


@pytest.mark.slow
def test_deploy_server_workers_answer_restart_and_stop_cleanly_on_sigterm(
    h: Any, start_server: Any, digits_data: tuple[np.ndarray, np.ndarray]
) -> None:
    if not (h.EMBEDDED / MODEL).is_file():
        pytest.skip(f"the embedded default model is not generated yet ({h.EMBEDDED})")
    import onnxruntime as ort  # type: ignore[import-untyped]

    images, _ = digits_data
    images = images[:24]
    session = ort.InferenceSession(str(h.EMBEDDED / MODEL), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": images})[0]

    server = start_server(["--workers", "2"], env={"AS_DEPLOY__DRAIN_GRACE_S": "0.5"})
    server.wait_ready()
    supervisor = server.process.pid
    _wait_for(lambda: len(_children(supervisor)) == 2, 30, "two worker processes")
    workers = _children(supervisor)

    got = _predict_each_on_new_connection(server.url, images)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    # A worker killed from outside is replaced; the other one serves meanwhile.
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    _wait_for(
        lambda: len(_children(supervisor) - {killed}) == 2, 30, "a worker in the killed one's place"
    )
    got = _predict_each_on_new_connection(server.url, images)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    # /metrics answers for every worker, the killed one's counts included.
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    served = h.metric_value(metrics, "as_deploy_requests_total", model="digits-cnn", code="200")
    assert served == 2 * len(images)

    workers = _children(supervisor)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, server.output()
    assert "as-deploy serve: stopped on SIGTERM" in server.output()
    assert "2 workers" in server.output()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the supervisor"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass  # nothing listens on the port any more
