"""Fixtures of the dashboard's tests: real result stores, a real model server, the app.

The stores are written by ``as-bench run`` in a subprocess, as a user writes them: one
baseline run (the ``mlp`` workload and :mod:`chain_workload` at 2 layers, torch, batch
sizes 1 and 8) and one run of the same chain workload at 40 layers, twenty times the
work per call under the same benchmark names: the injected regression. They are written
once per test session: the first xdist worker that needs them writes them under a lock in
the session's shared temporary folder, the others wait for it and read them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHAIN = "chain_workload:make"
FAST_LAYERS = "2"
SLOW_LAYERS = "40"


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class FakeServerMetrics:
    """Metrics with as-deploy's names and types, exposed as prometheus_client writes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "as_deploy_requests", "r", ["model", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "as_deploy_request_duration_seconds",
            "l",
            ["model", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "as_deploy_batch_size", "b", ["model"], buckets=(1, 2, 4, 8), registry=self.registry
        )
        self.queue = Gauge("as_deploy_queue_depth", "q", ["model"], registry=self.registry)
        self.in_flight = Gauge("as_deploy_in_flight_requests", "f", registry=self.registry)
        self.loaded = Gauge("as_deploy_loaded_models", "m", registry=self.registry)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def script(name: str, module: str) -> list[str]:
    """An installed console script, or ``python -m module`` where it is not installed."""
    path = Path(sys.executable).parent / name
    return [str(path)] if path.is_file() else [sys.executable, "-m", module]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the user's own as-bench, as-deploy and dashboard settings."""
    prefixes = ("AS_BENCH__", "AS_DEPLOY__", "AS_DASHBOARD__")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def bench_run(out: Path, cache: Path, workloads: list[str], layers: str, log: Path) -> None:
    """``as-bench run`` of ``workloads`` on torch into the store ``out``."""
    argv = [*script("as-bench", "as_bench"), "run"]
    for workload in workloads:
        argv += ["-w", workload]
    # One thread: torch's intra-op threads on a busy 2-core machine make a batch of 8
    # swing by orders of magnitude from sample to sample.
    argv += ["-b", "torch", "-d", "cpu", "-B", "1", "-B", "8", "--max-time", "0.3"]
    argv += ["--threads", "1"]
    argv += ["--remeasure-noisy", "0", "-o", str(out)]
    env = clean_env(
        AS_BENCH_CACHE_DIR=str(cache),
        AS_BENCH__MEASURE__MIN_SAMPLES="15",
        PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        AS_DASHBOARD_TEST_LAYERS=layers,
    )
    with log.open("wb") as output:
        done = subprocess.run(argv, stdout=output, stderr=subprocess.STDOUT, env=env, timeout=600)
    assert done.returncode == 0, log.read_text(errors="replace")


@dataclass(frozen=True)
class Stores:
    """The stores ``as-bench run`` wrote: the baseline and the slowed run."""

    base: Path
    slow: Path


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """A baseline store and one whose chain workload is twenty times the work per call."""
    pytest.importorskip("torch", reason="as-bench run on torch needs the torch extra")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder every worker of this session shares
    root = shared / "as-dashboard-stores"
    root.mkdir(exist_ok=True)
    base, slow = root / "base", root / "slow"
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker writes; the others wait, then read
        if not (root / "done").is_file():
            for store in (base, slow):
                shutil.rmtree(store, ignore_errors=True)  # a half-written one of a failed try
            cache = root / "as-bench-cache"
            bench_run(base, cache, ["mlp", CHAIN], FAST_LAYERS, root / "base.log")
            bench_run(slow, cache, [CHAIN], SLOW_LAYERS, root / "slow.log")
            (root / "done").write_text("")
    return Stores(base, slow)


class Process:
    """A server in a subprocess, its output in files, stopped with SIGTERM."""

    def __init__(self, argv: list[str], workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "out.txt"
        self.stderr_path = workdir / "err.txt"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)

    def output(self) -> str:
        return (
            self.stdout_path.read_text(errors="replace")
            + "\n--- stderr ---\n"
            + self.stderr_path.read_text(errors="replace")
        )

    def wait_http(self, url: str, timeout: float = 120.0) -> None:
        """Wait until ``url`` answers 200 (generous: a busy 2-core machine starts slowly)."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the process exited early:\n{self.output()}")
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer 200 in {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def start_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start subprocesses (``start(argv, env)``) for a module's tests; stopped after them."""
    started: list[Process] = []
    root = tmp_path_factory.mktemp("processes")

    def start(argv: list[str], env: dict[str, str]) -> Process:
        process = Process(argv, root / f"process{len(started)}", env)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    """A local HTTP server answering each path with the status and body set in the dict."""
    answers: dict[str, tuple[int, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def h() -> Any:
    """This module, for its helpers: test modules cannot import conftest under importlib."""
    return sys.modules[__name__]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the stores are slow: writing them takes two ``as-bench run``."""
    for item in items:
        if "stores" in getattr(item, "fixturenames", ()) and item.path.is_relative_to(TESTS):
            item.add_marker(pytest.mark.slow)
