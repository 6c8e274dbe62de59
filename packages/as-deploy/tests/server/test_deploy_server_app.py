"""The server's endpoints, in-process: health, readiness, metrics, models, predict, OpenAPI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient

from as_deploy.server import create_app
from as_deploy.settings import ServerSettings


def _client_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(client.get("/ready").text)


def test_deploy_server_health_ready_models_and_metrics(repo: Path, h: Any) -> None:
    app = create_app(ServerSettings(preload=["digits-cnn"]), repo=repo)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        _client_ready(client)
        ready = client.get("/ready").json()
        assert ready["ready"] is True and ready["status"] == "ready"
        assert ready["loaded"] == ["digits-cnn/1"]

        models = client.get("/v1/models").json()["models"]
        by_name = {m["name"]: m for m in models}
        assert set(by_name) == {"digits-cnn", "int-sum", "slow-mlp"}
        assert by_name["digits-cnn"] == {
            "name": "digits-cnn",
            "latest": "1",
            "versions": [{"version": "1", "loaded": True}],
        }
        assert by_name["slow-mlp"]["versions"] == [{"version": "1", "loaded": False}]

        info = client.get("/v1/models/digits-cnn").json()
        assert info["name"] == "digits-cnn" and info["version"] == "1"
        assert info["versions"] == ["1"] and info["loaded"] is True
        assert info["format"] == "onnx"
        assert info["inputs"][0]["name"] == "input"
        assert info["inputs"][0]["shape"] == [None, 1, 8, 8]
        assert info["outputs"][0]["name"] == "logits"
        assert info["labels"] == [str(i) for i in range(10)]
        assert client.get("/v1/models/digits-cnn", params={"version": "1"}).status_code == 200
        # Reading a manifest does not load the model.
        slow = client.get("/v1/models/slow-mlp").json()
        assert slow["loaded"] is False and slow["labels"] is None

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert h.metric_value(metrics.text, "as_deploy_loaded_models") == 1.0


def test_deploy_server_predict_matches_onnxruntime_and_labels(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray], h: Any
) -> None:
    images, labels = digits_data
    batch = images[:5]
    session = ort.InferenceSession(str(repo / "digits-cnn" / "1" / "model.onnx"))
    (expected,) = session.run(["logits"], {"input": batch})
    app = create_app(ServerSettings(), repo=repo)
    with TestClient(app) as client:
        response = client.post("/v1/models/digits-cnn/predict", json=h.digits_body(batch))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "digits-cnn" and body["version"] == "1"
        np.testing.assert_allclose(np.array(body["outputs"]["logits"]), expected, rtol=1e-5)
        predictions = body["predictions"]
        assert len(predictions) == 5
        assert [p["label"] for p in predictions] == [str(int(t)) for t in labels[:5]]
        for row, prediction in zip(expected, predictions, strict=True):
            probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
            assert prediction["index"] == int(row.argmax())
            assert prediction["score"] == pytest.approx(float(probabilities.max()), rel=1e-5)

        # An explicit version, and a model without labels has no predictions.
        response = client.post(
            "/v1/models/digits-cnn/predict", params={"version": "1"}, json=h.digits_body(batch[:1])
        )
        assert response.status_code == 200
        ints = client.post("/v1/models/int-sum/predict", json={"inputs": {"ids": [[1, 2, 3, 4]]}})
        assert ints.status_code == 200, ints.text
        assert ints.json()["outputs"] == {"y": [10.0]}
        assert "predictions" not in ints.json()

        text = client.get("/metrics").text
        assert h.metric_value(text, "as_deploy_requests_total", model="digits-cnn", code="200") == 2
        assert (
            h.metric_value(text, "as_deploy_request_duration_seconds_count", model="digits-cnn")
            == 2
        )
        assert h.metric_value(text, "as_deploy_batch_size_count", model="digits-cnn") == 2
        assert h.metric_value(text, "as_deploy_loaded_models") == 2


def test_deploy_server_openapi_documents_bodies_and_errors(repo: Path) -> None:
    app = create_app(ServerSettings(), repo=repo)
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/health",
        "/ready",
        "/metrics",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/predict",
    ):
        assert path in paths
    predict = paths["/v1/models/{name}/predict"]["post"]
    body_schema = predict["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/PredictRequest"}
    components = schema["components"]["schemas"]
    assert "inputs" in components["PredictRequest"]["properties"]
    assert {"model", "version", "outputs", "predictions"} <= set(
        components["PredictResponse"]["properties"]
    )
    for code in ("400", "404", "409", "413", "415", "422", "503", "504"):
        assert predict["responses"][code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "503" in paths["/ready"]["get"]["responses"]
    assert "404" in paths["/v1/models/{name}"]["get"]["responses"]


def test_deploy_server_ready_is_503_until_preload_and_after_shutdown(repo: Path, h: Any) -> None:
    async def scenario() -> None:
        app = create_app(ServerSettings(preload=["slow-mlp", "digits-cnn"]), repo=repo)
        state = app.state.server
        async with h.running(app, ready=False) as client:
            first = await client.get("/ready")
            # Loading happens in the background: health answers at once.
            assert (await client.get("/health")).status_code == 200
            if first.status_code == 503:
                assert first.json()["status"] == "loading"
            await h.wait_ready(client)
            assert (await client.get("/ready")).json()["loaded"] == [
                "slow-mlp/1",
                "digits-cnn/1",
            ]
            state.draining = True  # what SIGTERM sets in `as-deploy serve`
            stopping = await client.get("/ready")
            assert stopping.status_code == 503
            assert stopping.json()["status"] == "shutting_down"
            # A request that reaches a draining server is still served.
            served = await client.post(
                "/v1/models/digits-cnn/predict",
                json={"inputs": {"input": [[[[0.0] * 8] * 8]]}},
            )
            assert served.status_code == 200, served.text

    asyncio.run(scenario())


def test_deploy_server_preload_failure_keeps_ready_503_with_reason(repo: Path, h: Any) -> None:
    async def scenario() -> None:
        app = create_app(ServerSettings(preload=["digits-cnn", "missing-model"]), repo=repo)
        async with h.running(app, ready=False) as client:
            deadline = asyncio.get_running_loop().time() + 60
            body = (await client.get("/ready")).json()
            while body["status"] == "loading" and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
                body = (await client.get("/ready")).json()
            assert body["status"] == "failed" and body["ready"] is False
            assert "missing-model" in body["errors"]
            assert "not in the repository" in body["errors"]["missing-model"]
            # The models that loaded serve anyway.
            ok = await client.post(
                "/v1/models/digits-cnn/predict", json={"inputs": {"input": [[[[0.5] * 8] * 8]]}}
            )
            assert ok.status_code == 200

    asyncio.run(scenario())


@pytest.mark.slow
def test_deploy_server_does_not_import_torch(repo: Path) -> None:
    # A fresh interpreter: this test process has torch loaded by other tests.
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from as_deploy.server import create_app
        from as_deploy.settings import ServerSettings

        app = create_app(ServerSettings(), repo={str(repo)!r})
        with TestClient(app) as client:
            image = [[[[0.25] * 8] * 8]]
            response = client.post(
                "/v1/models/digits-cnn/predict", json={{"inputs": {{"input": image}}}}
            )
            assert response.status_code == 200, response.text
        assert "torch" not in sys.modules, "the server imported torch"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
