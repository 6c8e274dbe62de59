"""Fixtures of as-deploy's tests: model repositories with real models, running servers.

The digits repository copies the default model shipped in the package when it is there,
and otherwise exports as-bench's trained ``digits-cnn`` to ONNX, so that the server tests
do not depend on when the embedded model was generated. Extra test models (a slow MLP, an
integer-input model) are real ONNX graphs built with ``onnx.helper``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from as_deploy.manifest import FileEntry, Manifest, Provenance, TensorSpec
from as_deploy.repository import ModelRepository, sha256_file

EMBEDDED = Path(__file__).resolve().parents[1] / "src" / "as_deploy" / "_default_model"
DIGITS = "digits-cnn"
SLOW = "slow-mlp"
INTS = "int-sum"
SLOW_FEATURES = 64


def make_manifest(
    name: str,
    version: str,
    files: dict[str, Path],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    *,
    model_file: str,
    model_format: str = "onnx",
    labels: list[str] | None = None,
) -> Manifest:
    """A manifest for ``files`` (hashes computed), made by hand for a test model."""
    entries = [
        FileEntry(
            path=relative,
            sha256=sha256_file(path),
            size_bytes=path.stat().st_size,
            role="model" if relative == model_file else "weights",
        )
        for relative, path in files.items()
    ]
    return Manifest.model_validate(
        {
            "name": name,
            "version": version,
            "format": model_format,
            "inputs": inputs,
            "outputs": outputs,
            "labels": labels,
            "files": entries,
            "provenance": Provenance(source="as-deploy tests", created_at=dt.datetime.now(dt.UTC)),
        }
    )


def _export_digits(root: Path, scratch: Path) -> None:
    from as_bench.backends.onnxruntime import OnnxRuntimeBackend
    from as_bench.workloads import get_workload

    path, dynamic = OnnxRuntimeBackend().export(get_workload(DIGITS), 2, scratch)
    assert dynamic, "the digits export must have a dynamic batch axis"
    files = {p.name: p for p in scratch.iterdir() if p.name.startswith("model.onnx")}
    manifest = make_manifest(
        DIGITS,
        "1",
        files,
        [TensorSpec(name="input", dtype="float32", shape=[None, 1, 8, 8])],
        [TensorSpec(name="logits", dtype="float32", shape=[None, 10])],
        model_file=path.name,
        labels=[str(i) for i in range(10)],
    )
    ModelRepository(root).add(manifest, files)


@pytest.fixture(scope="session")
def digits_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding ``digits-cnn/1``: the embedded model, or an as-bench export."""
    root = tmp_path_factory.mktemp("digits-repo")
    if (EMBEDDED / DIGITS / "1" / "manifest.json").is_file():
        shutil.copytree(EMBEDDED / DIGITS, root / DIGITS)
    else:
        _export_digits(root, tmp_path_factory.mktemp("digits-export"))
    return root


def _build_slow_model(path: Path, layers: int = 48, width: int = 1024) -> None:
    """An MLP whose every layer reuses one ``width`` x ``width`` matrix: slow per row."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w_in = (rng.standard_normal((SLOW_FEATURES, width)) / np.sqrt(SLOW_FEATURES)).astype(np.float32)
    w_mid = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    w_out = (rng.standard_normal((width, 4)) / np.sqrt(width)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h0"])]
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w_mid"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{layers}", "w_out"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SLOW_FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(w_in, "w_in"),
            numpy_helper.from_array(w_mid, "w_mid"),
            numpy_helper.from_array(w_out, "w_out"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _build_int_model(path: Path) -> None:
    """``y = sum(float(ids), axis=1)``: an int64 input, for dtype checks."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["f", "axes"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "ints",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def extra_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with ``slow-mlp/1`` and ``int-sum/1`` (built, not downloaded)."""
    root = tmp_path_factory.mktemp("extra-repo")
    scratch = tmp_path_factory.mktemp("extra-build")
    repo = ModelRepository(root)
    slow = scratch / "slow.onnx"
    _build_slow_model(slow)
    repo.add(
        make_manifest(
            SLOW,
            "1",
            {"model.onnx": slow},
            [TensorSpec(name="x", dtype="float32", shape=[None, SLOW_FEATURES])],
            [TensorSpec(name="y", dtype="float32", shape=[None, 4])],
            model_file="model.onnx",
        ),
        {"model.onnx": slow},
    )
    ints = scratch / "ints.onnx"
    _build_int_model(ints)
    repo.add(
        make_manifest(
            INTS,
            "1",
            {"model.onnx": ints},
            [TensorSpec(name="ids", dtype="int64", shape=[None, 4])],
            [TensorSpec(name="y", dtype="float32", shape=[None])],
            model_file="model.onnx",
        ),
        {"model.onnx": ints},
    )
    return root


def copy_model(source: Path, name: str, target: Path, new_name: str | None = None) -> None:
    """Copy every version of ``name`` from ``source`` into the repository ``target``.

    With ``new_name`` the versions are added again under that name (new manifests).
    """
    if new_name is None:
        shutil.copytree(source / name, target / name)
        return
    src = ModelRepository(source)
    for version in src.versions(name):
        loaded = src.load(name, version)
        manifest = loaded.manifest.model_copy(update={"name": new_name})
        files = {entry.path: loaded.directory / entry.path for entry in manifest.files}
        ModelRepository(target).add(manifest, files)


@pytest.fixture
def repo(tmp_path: Path, digits_source: Path, extra_models: Path) -> Path:
    """A fresh repository per test: digits-cnn, slow-mlp and int-sum."""
    root = tmp_path / "repo"
    root.mkdir()
    copy_model(digits_source, DIGITS, root)
    copy_model(extra_models, SLOW, root)
    copy_model(extra_models, INTS, root)
    return root


@pytest.fixture(scope="session")
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as the model takes them: ``(N, 1, 8, 8)`` float32 and labels."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return images, digits.target.astype(np.int64)


# -- running apps in-process ------------------------------------------------------------


async def wait_ready(client: httpx.AsyncClient, timeout: float = 60.0) -> None:
    """Poll ``/ready`` until 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/ready")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/ready stayed {response.status_code}: {response.text}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(app: Any, *, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield an in-process client (optionally once ready)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as client:
            if ready:
                await wait_ready(client)
            yield client


def digits_body(images: np.ndarray) -> dict[str, Any]:
    """A predict request for ``images`` of shape ``(N, 1, 8, 8)``."""
    return {"inputs": {"input": images.tolist()}}


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        found = {key: val.strip('"') for key, val in found.items()}
        if all(found.get(key) == val for key, val in labels.items()):
            return float(value)
    return 0.0


# -- servers in a subprocess ------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_deploy_command() -> list[str]:
    """The installed ``as-deploy`` console script (``python -m as_deploy`` without it)."""
    script = Path(sys.executable).parent / "as-deploy"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "as_deploy"]


class ServerProcess:
    """``as-deploy serve`` in a subprocess, with its output in files."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / "server.out"
        self.stderr_path = workdir / "server.err"
        # No readiness grace on SIGTERM unless a test asks for one: the default (seconds of
        # /ready 503 while still serving) is for load balancers, not for test teardown.
        defaults = {"PYTHONUNBUFFERED": "1", "AS_DEPLOY__DRAIN_GRACE_S": "0"}
        full_env = {**os.environ, **defaults, **(env or {})}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*as_deploy_command(), "serve", "--port", str(self.port), *args],
                stdout=out,
                stderr=err,
                env=full_env,
            )

    def output(self) -> str:
        return self.stdout_path.read_text() + "\n--- stderr ---\n" + self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the server was not ready in {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Start ``as-deploy serve`` subprocesses; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = ServerProcess(args, workdir, env)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def h() -> Any:
    """This module, for its helpers: test modules cannot import conftest under importlib."""
    return sys.modules[__name__]
