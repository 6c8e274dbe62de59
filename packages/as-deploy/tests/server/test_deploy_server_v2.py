"""The Open Inference Protocol (KServe v2) endpoints.

Two halves: tritonclient's HTTP client, unchanged, against a real ``as-deploy serve``
process (health, metadata, inference with JSON and with binary tensor data on real
scikit-learn digits, whose answers must agree exactly with the server's own ``/v1``
predictions); and the protocol itself in-process, byte by byte, with its errors
(``{"error": "..."}``, 400 for a request that does not fit, 404 for an unknown model).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton  # type: ignore[import-untyped]
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from as_deploy.server import create_app
from as_deploy.settings import LimitsSettings, ServerSettings

HEADER = "Inference-Header-Content-Length"
INFER = "/v2/models/digits-cnn/infer"

pytestmark = pytest.mark.xdist_group("deploy-server-v2")


@pytest.fixture(scope="module")
def v2_repo(
    h: Any, tmp_path_factory: pytest.TempPathFactory, digits_source: Path, extra_models: Path
) -> Path:
    """digits-cnn (float32 images), int-sum (int64 input) and slow-mlp."""
    root = tmp_path_factory.mktemp("v2-repo")
    h.copy_model(digits_source, "digits-cnn", root)
    h.copy_model(extra_models, "int-sum", root)
    h.copy_model(extra_models, "slow-mlp", root)
    return root


@pytest.fixture(scope="module")
def images(digits_data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """200 digits as the model takes them, ``(200, 1, 8, 8)`` float32, and their labels."""
    pictures, labels = digits_data
    return pictures[:200], labels[:200]


def _v1_logits(client: Any, batch: np.ndarray) -> np.ndarray:
    response = client.post(
        "/v1/models/digits-cnn/predict", json={"inputs": {"input": batch.tolist()}}
    )
    assert response.status_code == 200, response.text
    return np.array(response.json()["outputs"]["logits"], dtype=np.float32)


# -- tritonclient against a running server ------------------------------------------------


@pytest.fixture(scope="module")
def served(h: Any, v2_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``as-deploy serve`` on a free port, preloading digits-cnn and int-sum."""
    server = h.ServerProcess(
        ["--repo", str(v2_repo)],
        tmp_path_factory.mktemp("v2-server"),
        env={"AS_DEPLOY__PRELOAD": '["digits-cnn", "int-sum"]'},
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output()


@pytest.fixture(scope="module")
def client(served: Any) -> Iterator[Any]:
    """tritonclient's HTTP client, as a user would make it (host:port, no scheme)."""
    connection = triton.InferenceServerClient(url=f"127.0.0.1:{served.port}", concurrency=8)
    try:
        yield connection
    finally:
        connection.close()


@pytest.mark.slow
def test_tritonclient_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "as-deploy"
    assert "binary_tensor_data" in server["extensions"]
    assert client.is_model_ready("digits-cnn")
    assert client.is_model_ready("digits-cnn", "1")
    assert not client.is_model_ready("digits-cnn", "7")
    metadata = client.get_model_metadata("digits-cnn")
    assert metadata == {
        "name": "digits-cnn",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get_model_metadata("digits-cnn", "1") == metadata
    ints = client.get_model_metadata("int-sum")
    assert ints["inputs"] == [{"name": "ids", "datatype": "INT64", "shape": [-1, 4]}]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("no-such-model")
    assert missing.value.status() == "404"
    assert "no-such-model" in missing.value.message()


def _infer(client: Any, batch: np.ndarray, *, binary_in: bool, binary_out: bool) -> Any:
    data = triton.InferInput("input", list(batch.shape), "FP32")
    data.set_data_from_numpy(batch, binary_data=binary_in)
    wanted = triton.InferRequestedOutput("logits", binary_data=binary_out)
    return client.infer("digits-cnn", [data], outputs=[wanted], request_id="req-7")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("binary_in", "binary_out"), [(False, False), (True, True), (True, False), (False, True)]
)
def test_tritonclient_infers_digits_like_the_v1_api(
    client: Any,
    served: Any,
    images: tuple[np.ndarray, np.ndarray],
    binary_in: bool,
    binary_out: bool,
) -> None:
    pictures, labels = images
    with httpx.Client(base_url=served.url, timeout=30) as v1:
        expected = np.concatenate([_v1_logits(v1, pictures[i : i + 50]) for i in range(0, 200, 50)])
    logits = []
    for start in range(0, 200, 50):
        result = _infer(
            client, pictures[start : start + 50], binary_in=binary_in, binary_out=binary_out
        )
        response = result.get_response()
        assert response["model_name"] == "digits-cnn" and response["model_version"] == "1"
        assert response["id"] == "req-7"
        output = result.get_output("logits")
        assert ("binary_data_size" in output.get("parameters", {})) is binary_out
        logits.append(result.as_numpy("logits"))
    got = np.concatenate(logits)
    assert got.shape == (200, 10) and got.dtype == np.float32
    # The same model on the same rows: the same classes as /v1, and the same logits up to
    # float32 rounding of JSON's decimal text.
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    right = int((got.argmax(axis=1) == labels).sum())
    assert right >= 190, f"only {right} of 200 digits were labelled right"


@pytest.mark.slow
def test_tritonclient_concurrent_single_image_requests_are_answered_each_its_own(
    client: Any, images: tuple[np.ndarray, np.ndarray]
) -> None:
    pictures, labels = images
    pending = []
    for index in range(64):
        data = triton.InferInput("input", [1, 1, 8, 8], "FP32")
        data.set_data_from_numpy(pictures[index : index + 1])  # binary by default
        pending.append(client.async_infer("digits-cnn", [data], request_id=str(index)))
    answers = [request.get_result() for request in pending]
    # Requests that ran in one batch still get their own rows back, under their own id.
    assert [a.get_response()["id"] for a in answers] == [str(i) for i in range(64)]
    predicted = np.array([int(a.as_numpy("logits").argmax()) for a in answers])
    assert int((predicted == labels[:64]).sum()) >= 60


@pytest.mark.slow
def test_tritonclient_classification_gzip_ints_and_errors(
    client: Any, images: tuple[np.ndarray, np.ndarray]
) -> None:
    pictures, labels = images
    batch = pictures[:20]
    data = triton.InferInput("input", list(batch.shape), "FP32")
    data.set_data_from_numpy(batch)
    top = triton.InferRequestedOutput("logits", class_count=2)
    result = client.infer("digits-cnn", [data], outputs=[top], request_compression_algorithm="gzip")
    classes = result.as_numpy("logits")
    assert classes.shape == (20, 2)
    # "score:index:label", best first.
    first = [row[0].decode().split(":") for row in classes]
    assert all(label == index for _, index, label in first)
    assert int((np.array([int(index) for _, index, _ in first]) == labels[:20]).sum()) >= 18
    assert all(
        float(row[0].decode().split(":")[0]) >= float(row[1].decode().split(":")[0])
        for row in classes
    )

    ids = np.array([[1, 2, 3, 4], [10, 20, 30, 40]], dtype=np.int64)
    for binary in (False, True):
        tensor = triton.InferInput("ids", [2, 4], "INT64")
        tensor.set_data_from_numpy(ids, binary_data=binary)
        sums = client.infer("int-sum", [tensor]).as_numpy("y")
        np.testing.assert_array_equal(sums, np.array([10.0, 100.0], dtype=np.float32))

    wrong = triton.InferInput("input", [1, 1, 8, 8], "FP64")
    wrong.set_data_from_numpy(pictures[:1].astype(np.float64))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("digits-cnn", [wrong])
    assert refused.value.status() == "400"
    assert "datatype 'FP64' does not match the model's FP32" in refused.value.message()


# -- the protocol byte by byte, in-process ------------------------------------------------


@pytest.fixture(scope="module")
def app_client(v2_repo: Path) -> Iterator[TestClient]:
    """The app in-process with only digits-cnn preloaded, ready."""
    configured = ServerSettings(
        preload=["digits-cnn"], limits=LimitsSettings(max_elements=64 * 300)
    )
    with TestClient(create_app(configured, repo=v2_repo)) as test_client:
        for _ in range(3000):
            if test_client.get("/v2/health/ready").status_code == 200:
                break
            time.sleep(0.02)
        yield test_client


def _json_request(batch: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ],
        **extra,
    }


def _binary_request(
    batch: np.ndarray, *, size: int | None = None, outputs: list[dict[str, Any]] | None = None
) -> tuple[bytes, bytes]:
    raw = batch.astype("<f4").tobytes()
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw) if size is None else size},
            }
        ]
    }
    if outputs is not None:
        header["outputs"] = outputs
    return json.dumps(header).encode(), raw


def _post_binary(client: TestClient, header: bytes, data: bytes, **headers: str) -> Any:
    return client.post(
        INFER,
        content=header + data,
        headers={HEADER: str(len(header)), "Content-Type": "application/octet-stream", **headers},
    )


def _read_binary(response: Any) -> tuple[dict[str, Any], bytes]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    return json.loads(response.content[:length]), response.content[length:]


def test_v2_health_metadata_and_readiness(app_client: TestClient) -> None:
    assert app_client.get("/v2/health/live").json() == {"live": True}
    assert app_client.get("/v2/health/ready").json() == {"ready": True}
    meta = app_client.get("/v2").json()
    assert meta["name"] == "as-deploy" and meta["extensions"] == [
        "binary_tensor_data",
        "classification",
    ]
    model = app_client.get("/v2/models/int-sum/versions/1").json()
    assert model["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1]}]
    # int-sum is not preloaded: not ready (400) until its first inference loads it.
    before = app_client.get("/v2/models/int-sum/ready")
    assert (before.status_code, before.json()) == (400, {"name": "int-sum", "ready": False})
    answer = app_client.post(
        "/v2/models/int-sum/versions/1/infer",
        json={
            "inputs": [
                {"name": "ids", "shape": [1, 4], "datatype": "INT64", "data": [[1, 2, 3, 4]]}
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [1], "data": [10.0]}
    ]
    after = app_client.get("/v2/models/int-sum/versions/1/ready")
    assert (after.status_code, after.json()) == (200, {"name": "int-sum", "ready": True})
    for path, words in [
        ("/v2/models/nope", "model 'nope' is not in the repository"),
        ("/v2/models/nope/ready", "model 'nope' is not in the repository"),
        ("/v2/models/digits-cnn/versions/9", "model 'digits-cnn' has no version '9'"),
        ("/v2/models/digits-cnn/versions/9/ready", "has no version '9'"),
        ("/v2/nothing/here", "no route /v2/nothing/here"),
    ]:
        response = app_client.get(path)
        assert response.status_code == 404, path
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str)
        assert words in body["error"], body


def test_v2_json_and_binary_inference_agree_with_v1(
    app_client: TestClient, images: tuple[np.ndarray, np.ndarray]
) -> None:
    pictures, labels = images
    batch = pictures[:40]
    expected = _v1_logits(app_client, batch)

    flat = app_client.post(INFER, json=_json_request(batch, id="a1"))
    assert flat.status_code == 200, flat.text
    assert flat.headers["content-type"] == "application/json" and HEADER not in flat.headers
    body = flat.json()
    assert (
        body["model_name"] == "digits-cnn" and body["model_version"] == "1" and body["id"] == "a1"
    )
    (output,) = body["outputs"]
    assert (
        output["name"] == "logits" and output["datatype"] == "FP32" and output["shape"] == [40, 10]
    )
    json_logits = np.array(output["data"], dtype=np.float32).reshape(40, 10)
    np.testing.assert_allclose(json_logits, expected, rtol=1e-6, atol=1e-6)

    nested = _json_request(batch)
    nested["inputs"][0]["data"] = batch.tolist()  # nested lists are row-major too
    again = app_client.post("/v2/models/digits-cnn/versions/1/infer", json=nested)
    assert again.json()["outputs"][0]["data"] == output["data"]

    header, data = _binary_request(
        batch, outputs=[{"name": "logits", "parameters": {"binary_data": True}}]
    )
    result, blob = _read_binary(_post_binary(app_client, header, data))
    (described,) = result["outputs"]
    assert described["parameters"] == {"binary_data_size": 40 * 10 * 4} and "data" not in described
    binary_logits = np.frombuffer(blob, dtype="<f4").reshape(40, 10)
    np.testing.assert_array_equal(binary_logits.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(binary_logits, expected, rtol=1e-6, atol=1e-6)
    assert int((binary_logits.argmax(axis=1) == labels[:40]).sum()) >= 37

    # binary_data_output: every output binary unless it says otherwise; here none is named.
    every = app_client.post(
        INFER, json=_json_request(batch[:3], parameters={"binary_data_output": True})
    )
    result, blob = _read_binary(every)
    assert result["outputs"][0]["parameters"]["binary_data_size"] == len(blob) == 3 * 10 * 4

    # Classification: the top classes as "score:index:label" strings, JSON here.
    top = app_client.post(
        INFER,
        json=_json_request(
            batch[:5], outputs=[{"name": "logits", "parameters": {"classification": 3}}]
        ),
    ).json()["outputs"][0]
    assert top["datatype"] == "BYTES" and top["shape"] == [5, 3]
    best = [int(entry.split(":")[1]) for entry in top["data"][::3]]
    assert best == expected[:5].argmax(axis=1).tolist()

    # A gzip body decodes to the same answer.
    packed = app_client.post(
        INFER,
        content=gzip.compress(json.dumps(_json_request(batch)).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert packed.json()["outputs"][0]["data"] == output["data"]


def test_v2_int64_binary_tensors(app_client: TestClient) -> None:
    ids = np.array([[1, -2, 3, 4], [5, 6, 7, 2**40]], dtype=np.int64)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "ids",
                    "shape": [2, 4],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 64},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = app_client.post(
        "/v2/models/int-sum/infer",
        content=header + ids.astype("<i8").tobytes(),
        headers={HEADER: str(len(header))},
    )
    result, blob = _read_binary(response)
    assert result["outputs"][0]["shape"] == [2]
    np.testing.assert_array_equal(
        np.frombuffer(blob, dtype="<f4"), ids.sum(axis=1).astype(np.float32)
    )


def _error(response: Any, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    for word in words:
        assert word in body["error"], body["error"]
    return str(body["error"])


def test_v2_bad_requests_answer_400_saying_what_and_where(
    app_client: TestClient, images: tuple[np.ndarray, np.ndarray]
) -> None:
    batch = images[0][:2]
    wrong_type = _json_request(batch)
    wrong_type["inputs"][0]["datatype"] = "FP64"
    _error(app_client.post(INFER, json=wrong_type), 400, "inputs[0] ('input')", "'FP64'", "FP32")

    wrong_shape = _json_request(batch[:, 0])
    _error(app_client.post(INFER, json=wrong_shape), 400, "shape [2, 8, 8]", "[-1, 1, 8, 8]")

    short = _json_request(batch)
    short["inputs"][0]["data"] = short["inputs"][0]["data"][:-1]
    _error(app_client.post(INFER, json=short), 400, "holds 127 elements", "needs 128")

    text = _json_request(batch)
    text["inputs"][0]["data"][5] = "0.5"
    _error(app_client.post(INFER, json=text), 400, "element 5", "a number for FP32", "a string")

    not_finite = _json_request(batch)
    body = json.dumps(not_finite).replace("0.0,", "NaN,", 1)
    _error(
        app_client.post(INFER, content=body, headers={"Content-Type": "application/json"}),
        400,
        "not finite",
    )

    missing = {
        "inputs": [
            {"name": "pixels", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}
        ]
    }
    _error(
        app_client.post(INFER, json=missing),
        400,
        "missing input(s) ['input']",
        "unknown input(s) ['pixels']",
    )

    unknown_output = _json_request(batch, outputs=[{"name": "probs"}])
    _error(app_client.post(INFER, json=unknown_output), 400, "outputs[0] ('probs')", "['logits']")

    _error(app_client.post(INFER, json={"inputs": []}), 400, "'inputs' must be a non-empty list")
    _error(
        app_client.post(
            INFER, content=b'{"inputs": [', headers={"Content-Type": "application/json"}
        ),
        400,
        "malformed JSON",
    )
    shared = _json_request(batch)
    shared["inputs"][0]["parameters"] = {"shared_memory_region": "r0"}
    _error(app_client.post(INFER, json=shared), 400, "shared memory", "not supported")

    ints = {
        "inputs": [{"name": "ids", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3.5, 4]}]
    }
    _error(app_client.post("/v2/models/int-sum/infer", json=ints), 400, "element 2", "an integer")


def test_v2_binary_data_errors(
    app_client: TestClient, images: tuple[np.ndarray, np.ndarray]
) -> None:
    batch = images[0][:2]
    header, data = _binary_request(batch, size=100)
    _error(
        _post_binary(app_client, header, data[:100]),
        400,
        "binary_data_size is 100 bytes",
        "shape [2, 1, 8, 8] of FP32 needs 512 bytes",
    )
    header, data = _binary_request(batch)
    _error(
        _post_binary(app_client, header, data[:300]),
        400,
        "binary_data_size is 512 bytes",
        "only 300",
    )
    _error(
        _post_binary(app_client, header, data + b"\0" * 8),
        400,
        "520 bytes after the JSON header",
        "add up to 512",
    )
    # The JSON header's length past the end of the body.
    too_long = app_client.post(
        INFER, content=header + data, headers={HEADER: str(len(header) + len(data) + 1)}
    )
    _error(
        too_long,
        400,
        HEADER,
        f"{len(header) + len(data) + 1} bytes",
        f"only {len(header) + len(data)} bytes",
    )
    _error(
        app_client.post(INFER, content=header + data, headers={HEADER: "twelve"}),
        400,
        HEADER,
        "'twelve'",
    )
    # Binary data without the header: the JSON parser meets the bytes, and the answer says why.
    _error(app_client.post(INFER, content=header + data), 400, "binary tensor data", HEADER)
    both = json.loads(header)
    both["inputs"][0]["data"] = [0.0] * 128
    _error(
        app_client.post(
            INFER,
            content=json.dumps(both).encode() + data,
            headers={HEADER: str(len(json.dumps(both)))},
        ),
        400,
        "both 'data' and parameters.binary_data_size",
    )
    nan = batch.copy()
    nan[1, 0, 3, 4] = np.inf
    header, data = _binary_request(nan)
    _error(_post_binary(app_client, header, data), 400, "element 92", "not finite")


def test_v2_limits_and_encodings_answer_in_the_protocols_shape(
    app_client: TestClient, h: Any, images: tuple[np.ndarray, np.ndarray]
) -> None:
    huge = np.zeros((301, 1, 8, 8), dtype=np.float32)  # the limit here is 300 images' worth
    header, data = _binary_request(huge)
    _error(_post_binary(app_client, header, data), 413, "too many tensor elements (19264)", "19200")
    _error(
        app_client.post(INFER, content=b"{}", headers={"Content-Encoding": "br"}),
        415,
        "Content-Encoding 'br' is not supported",
    )
    _error(app_client.get(INFER), 405, "GET is not allowed")
    before = h.metric_value(
        app_client.get("/metrics").text, "as_deploy_requests_total", model="digits-cnn", code="200"
    )
    assert app_client.post(INFER, json=_json_request(images[0][:1])).status_code == 200
    after = h.metric_value(
        app_client.get("/metrics").text, "as_deploy_requests_total", model="digits-cnn", code="200"
    )
    assert after == before + 1  # v2 inferences are counted with the /v1 predictions


@pytest.mark.slow
def test_v2_concurrency_limit_answers_503_in_the_protocols_shape(v2_repo: Path) -> None:
    configured = ServerSettings(
        preload=["slow-mlp"], limits=LimitsSettings(max_concurrency=1, retry_after_s=2)
    )
    rows = np.random.default_rng(0).standard_normal((1024, 64)).astype(np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1024, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ]
        }
    ).encode()

    async def scenario() -> tuple[int, httpx.Response]:
        app = create_app(configured, repo=v2_repo)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", timeout=60
            ) as client:
                while (await client.get("/v2/health/ready")).status_code != 200:
                    await asyncio.sleep(0.02)
                slow = asyncio.create_task(
                    client.post(
                        "/v2/models/slow-mlp/infer",
                        content=header + rows.tobytes(),
                        headers={HEADER: str(len(header))},
                    )
                )
                while app.state.server.in_flight == 0:
                    await asyncio.sleep(0.005)
                refused = await client.post("/v2/models/slow-mlp/infer", content=b"{}")
                return (await slow).status_code, refused

    status, refused = asyncio.run(scenario())
    assert status == 200
    _error(refused, 503, "too many requests in flight")
    assert refused.headers["retry-after"] == "2"


_NAMES = st.sampled_from(["input", "logits", "ids", "", "\ud800", "x" * 300]) | st.text(max_size=4)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=3)
)
_DATA = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5), max_leaves=80)
_PARAMETERS = _SCALARS | st.dictionaries(
    st.sampled_from(
        [
            "binary_data_size",
            "binary_data",
            "binary_data_output",
            "classification",
            "shared_memory_region",
            "x",
        ]
    ),
    _SCALARS | st.integers(0, 600),
    max_size=3,
)
_SHAPES = _SCALARS | st.lists(
    st.one_of(st.integers(-2, 9), st.just(2**70), st.booleans(), st.text(max_size=1)), max_size=5
)
_DATATYPES = _SCALARS | st.sampled_from(
    ["FP32", "FP64", "FP16", "INT64", "INT8", "BOOL", "BYTES", "BF16", "fp32"]
)
_INPUT = st.fixed_dictionaries(
    {},
    optional={
        "name": _NAMES,
        "shape": _SHAPES,
        "datatype": _DATATYPES,
        "data": _DATA,
        "parameters": _PARAMETERS,
    },
)
_OUTPUT = st.fixed_dictionaries({}, optional={"name": _NAMES, "parameters": _PARAMETERS})
_REQUEST = st.fixed_dictionaries(
    {},
    optional={
        "inputs": _SCALARS | st.lists(_INPUT, max_size=3),
        "outputs": _SCALARS | st.lists(_OUTPUT, max_size=2),
        "id": _SCALARS,
        "parameters": _PARAMETERS,
    },
)


def test_v2_infer_never_fails_on_the_servers_side_for_any_request(app_client: TestClient) -> None:
    # Generated requests, mostly wrong in some way, with binary data or not: every answer
    # is a 200 or a client error in the protocol's shape, never a 5xx.
    @given(
        request=_REQUEST,
        tail=st.binary(max_size=300),
        header=st.sampled_from(["exact", "none", "long"]),
        model=st.sampled_from(["digits-cnn", "int-sum"]),
    )
    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(request: dict[str, Any], tail: bytes, header: str, model: str) -> None:
        head = json.dumps(request).encode()
        lengths = {
            "exact": {HEADER: str(len(head))},
            "none": {},
            "long": {HEADER: str(len(head) + len(tail) + 1)},
        }
        response = app_client.post(
            f"/v2/models/{model}/infer", content=head + tail, headers=lengths[header]
        )
        if response.status_code == 200:
            length = response.headers.get(HEADER)
            answer = json.loads(response.content[: int(length)] if length else response.content)
            assert answer["model_name"] == model and isinstance(answer["outputs"], list)
        else:
            assert 400 <= response.status_code < 500, response.text
            _error(response, response.status_code)

    run()
