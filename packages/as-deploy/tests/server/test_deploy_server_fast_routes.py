"""The predict and infer routes answer the same whether FastAPI's router dispatches them.

:class:`~as_deploy.server._fast.FastRoutes` calls the handlers directly; an app without
it sends every request through the router. Both must give every request, good or bad,
the same status, headers and body.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from as_deploy.server import create_app
from as_deploy.server._fast import FastRoutes
from as_deploy.settings import LimitsSettings, ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"
INFER = "/v2/models/digits-cnn/infer"
JSON = {"content-type": "application/json"}


def _image(value: Any = 0.5) -> list[Any]:
    return [[[value] * 8 for _ in range(8)]]


def _binary_infer() -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 8, 8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    body = header + np.full(64, 0.25, dtype="<f4").tobytes()
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    return body, headers


def _v2_json(data: Any, **extra: Any) -> bytes:
    tensor = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": data, **extra}
    return json.dumps({"inputs": [tensor]}).encode()


def _requests() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(method, path, body, headers): answered, refused, and not for the direct routes."""
    good = json.dumps({"inputs": {"input": [_image()]}}).encode()
    binary, binary_headers = _binary_infer()
    return [
        ("POST", PREDICT, good, JSON),
        ("POST", PREDICT + "?version=1", good, JSON),
        ("POST", PREDICT + "?version=9", good, JSON),
        ("POST", PREDICT + "?version=..", good, JSON),
        ("POST", "/v1/models/no-such-model/predict", good, JSON),
        ("POST", "/v1/models/Bad%20Name/predict", good, JSON),
        ("POST", PREDICT, b"{not json", JSON),
        ("POST", PREDICT, b"[" * 100, JSON),
        ("POST", PREDICT, good, {"content-type": "text/plain"}),
        ("POST", PREDICT, json.dumps({"inputs": {"input": [_image("x")]}}).encode(), JSON),
        ("POST", PREDICT, json.dumps({"inputs": {"input": [_image(1e39)]}}).encode(), JSON),
        ("POST", PREDICT, json.dumps({"inputs": {"input": _image()}}).encode(), JSON),
        ("POST", PREDICT, b"x" * 5000, JSON),
        ("POST", PREDICT + "/", good, JSON),
        ("GET", PREDICT, b"", {}),
        ("PUT", PREDICT, good, JSON),
        ("POST", INFER, _v2_json([0.5] * 64), JSON),
        ("POST", "/v2/models/digits-cnn/versions/1/infer", _v2_json([0.5] * 64), JSON),
        ("POST", "/v2/models/digits-cnn/versions/7/infer", _v2_json([0.5] * 64), JSON),
        ("POST", INFER, _v2_json([0.5] * 63), JSON),
        ("POST", INFER, _v2_json([0.5] * 64, datatype="FP64"), JSON),
        ("POST", INFER, binary, binary_headers),
        ("POST", INFER, gzip.compress(binary), {**binary_headers, "content-encoding": "gzip"}),
        ("POST", INFER, binary[:-4], binary_headers),
        ("POST", "/v2/models/nope/infer", _v2_json([0.5] * 64), JSON),
        ("GET", INFER, b"", {}),
    ]


def _is_direct(middleware: Any) -> bool:
    return middleware.cls is FastRoutes


def _app(repo: Path, *, direct: bool) -> FastAPI:
    settings = ServerSettings(
        limits=LimitsSettings(max_body_bytes=4096, max_elements=1000, max_json_depth=32)
    )
    app = create_app(settings, repo=repo)
    if not direct:
        # Every request through Starlette's stack and FastAPI's router.
        app.user_middleware = [m for m in app.user_middleware if not _is_direct(m)]
        app.fast = None  # type: ignore[attr-defined]
    return app


@pytest.fixture
def clients(repo: Path) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        TestClient(_app(repo, direct=True)) as direct,
        TestClient(_app(repo, direct=False)) as routed,
    ):
        yield direct, routed


def test_direct_dispatch_answers_like_the_router(
    clients: tuple[TestClient, TestClient],
) -> None:
    direct, routed = clients
    assert isinstance(direct.app, FastAPI)
    assert any(map(_is_direct, direct.app.user_middleware))
    statuses = set()
    for method, path, body, headers in _requests():
        ours = direct.request(method, path, content=body, headers=headers, follow_redirects=False)
        theirs = routed.request(method, path, content=body, headers=headers, follow_redirects=False)
        where = f"{method} {path} {body[:60]!r}"
        assert ours.status_code == theirs.status_code, where
        assert ours.content == theirs.content, where
        assert dict(ours.headers) == dict(theirs.headers), where
        statuses.add(ours.status_code)
    # The list reaches answers and refusals alike.
    assert {200, 400, 404, 405, 413, 415, 422} <= statuses, statuses


def test_the_app_sends_inference_requests_straight_to_its_middleware(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The predict and infer requests skip Starlette's and FastAPI's layers: the router's
    # own stack is never built for them.
    app = _app(repo, direct=True)
    with TestClient(app) as client:
        stack = app.middleware_stack  # built when the lifespan started
        assert stack is not None
        paths: list[str] = []

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            paths.append(scope["path"])
            await stack(scope, receive, send)

        app.middleware_stack = counting
        answer = client.post(PREDICT, json={"inputs": {"input": [_image()]}})
        assert answer.status_code == 200, answer.text
        infer = client.post(INFER, content=_v2_json([0.5] * 64), headers=JSON)
        assert infer.status_code == 200, infer.text
        assert client.get("/health").status_code == 200
        assert client.get(PREDICT).status_code == 405
    assert paths == ["/health", PREDICT]


def test_an_unexpected_error_in_a_handler_is_a_json_500_in_each_protocol_shape(
    repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from as_deploy.server import routes, v2

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "_predict", broken)
    monkeypatch.setattr(v2, "_infer", broken)
    with TestClient(_app(repo, direct=True)) as client:
        v1 = client.post(PREDICT, json={"inputs": {"input": [_image()]}})
        assert v1.status_code == 500
        assert v1.json()["error"]["code"] == "internal_error"
        assert v1.json()["error"]["message"] == "internal error: RuntimeError"
        infer = client.post(INFER, content=_v2_json([0.5] * 64), headers=JSON)
        assert infer.status_code == 500
        assert infer.json() == {"error": "internal error: RuntimeError"}
        # The server goes on answering.
        assert client.get("/health").status_code == 200
    assert "unexpected error on POST /v1/models/digits-cnn/predict" in caplog.text
    assert "RuntimeError: a bug" in caplog.text
