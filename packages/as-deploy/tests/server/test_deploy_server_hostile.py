"""Hostile and broken requests: each gets a 4xx with a clear message, and serving goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from as_deploy.server import create_app
from as_deploy.settings import LimitsSettings, ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"
JSON = {"content-type": "application/json"}


def _image(value: Any = 0.5) -> list[Any]:
    return [[[value] * 8 for _ in range(8)]]


def _valid() -> dict[str, Any]:
    return {"inputs": {"input": [_image()]}}


def _with(location: tuple[int, int, int, int], value: Any) -> dict[str, Any]:
    body = _valid()
    n, c, y, x = location
    body["inputs"]["input"][n][c][y][x] = value
    return body


@pytest.fixture
def client(repo: Path) -> Iterator[TestClient]:
    settings = ServerSettings(
        limits=LimitsSettings(max_body_bytes=64 * 1024, max_elements=1000, max_json_depth=32)
    )
    with TestClient(create_app(settings, repo=repo)) as test_client:
        yield test_client


def _still_serves(client: TestClient) -> None:
    response = client.post(PREDICT, json=_valid())
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def _error(response: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return dict(error)


def _dump(body: Any) -> str:
    return json.dumps(body)  # allow_nan: NaN and Infinity become JSON's non-standard literals


HOSTILE_BODIES = [
    pytest.param(
        _dump(_with((0, 0, 3, 2), float("nan"))),
        422,
        "not_finite",
        ["inputs.input[0][0][3][2] is not finite"],
        id="nan",
    ),
    pytest.param(
        _dump(_with((0, 0, 1, 7), float("inf"))),
        422,
        "not_finite",
        ["inputs.input[0][0][1][7] is not finite"],
        id="infinity",
    ),
    pytest.param(
        _dump(_valid()).replace("0.5", "1e999", 1),
        422,
        "not_finite",
        ["inputs.input[0][0][0][0] is not finite"],
        id="overflow-literal",
    ),
    pytest.param(
        _dump(_with((0, 0, 2, 5), "0.5")),
        422,
        "invalid_dtype",
        ["inputs.input[0][0][2][5]", "expected a number for float32, got a string"],
        id="string",
    ),
    pytest.param(
        _dump(_with((0, 0, 0, 1), True)),
        422,
        "invalid_dtype",
        ["inputs.input[0][0][0][1]", "got true (a boolean)"],
        id="boolean",
    ),
    pytest.param(
        _dump(_with((0, 0, 0, 1), None)),
        422,
        "invalid_dtype",
        ["inputs.input[0][0][0][1]", "got null"],
        id="null",
    ),
    pytest.param(
        _dump({"inputs": {"input": [[[0.5] * 8] * 8, [[0.5] * 8] * 8]}}),
        422,
        "invalid_shape",
        ["inputs.input: expected shape [N, 1, 8, 8], got [2, 8, 8]"],
        id="wrong-rank",
    ),
    pytest.param(
        _dump({"inputs": {"input": [[[[0.5] * 7] * 8]]}}),
        422,
        "invalid_shape",
        ["expected shape [N, 1, 8, 8], got [1, 1, 8, 7]"],
        id="wrong-dim",
    ),
    pytest.param(
        _dump({"inputs": {"input": [[[[0.5] * 8] * 7 + [[0.5] * 7]]]}}),
        422,
        "invalid_shape",
        ["inputs.input[0][0][7]: expected a list of 8 items", "got 7 items", "ragged"],
        id="ragged",
    ),
    pytest.param(
        _dump({"inputs": {"input": [_image(), [[[0.5] * 8] * 8, [[0.5] * 8] * 8]]}}),
        422,
        "invalid_shape",
        ["inputs.input[1]: expected a list of 1 items", "got 2 items"],
        id="ragged-batch",
    ),
    pytest.param(
        _dump({"inputs": {"input": []}}),
        422,
        "invalid_shape",
        ["expected shape [N, 1, 8, 8], got [0]"],
        id="empty-batch",
    ),
    pytest.param(
        _dump({"inputs": {}}),
        422,
        "invalid_inputs",
        ["missing input(s) ['input']", "the model takes ['input']"],
        id="missing-input",
    ),
    pytest.param(
        _dump({"inputs": {"input": [_image()], "extra": [1]}}),
        422,
        "invalid_inputs",
        ["unknown input(s) ['extra']"],
        id="extra-input",
    ),
    pytest.param(
        _dump({"input": [_image()]}),
        422,
        "invalid_body",
        ["unknown field(s) ['input']"],
        id="no-inputs-key",
    ),
    pytest.param(_dump([1, 2, 3]), 422, "invalid_body", ["must be a JSON object"], id="array-body"),
    pytest.param(
        _dump({"inputs": [1]}), 422, "invalid_body", ["'inputs' must be an object"], id="list"
    ),
    pytest.param(
        '{"inputs": {"input": [[[',
        400,
        "malformed_json",
        ["malformed JSON at line 1 column"],
        id="truncated-json",
    ),
    pytest.param("", 400, "malformed_json", ["the request body is empty"], id="empty-body"),
    pytest.param(
        _dump(_valid()).replace("0.5", "1" * 5000, 1),
        400,
        "malformed_json",
        ["malformed JSON", "4300"],
        id="integer-over-python-digit-limit",
    ),
    pytest.param(
        _dump(_valid()).replace("0.5", "1" * 400, 1),
        422,
        "out_of_range",
        ["inputs.input", "out of range for float32"],
        id="integer-over-float64",
    ),
    pytest.param(b"\xff\xfe{}", 400, "malformed_json", ["not UTF-8"], id="not-utf8"),
    pytest.param(
        "[" * 100_000 + "]" * 100_000,
        # Over the 64 KiB body limit of this app: refused before it is parsed at all.
        413,
        "body_too_large",
        ["the limit is 65536 bytes"],
        id="deep-nesting-over-body-limit",
    ),
    pytest.param(
        "[" * 30_000,
        400,
        "too_deep",
        ["deeper than 32 levels"],
        id="deep-nesting",
    ),
    pytest.param(
        '{"inputs": {"input": ' + "[" * 40 + "]" * 40 + "}}",
        400,
        "too_deep",
        ["deeper than 32 levels"],
        id="deep-nesting-closed",
    ),
    pytest.param(
        _dump({"inputs": {"input": [_image()] * 16}}),
        413,
        "too_many_elements",
        ["1024 here", "the limit is 1000 per request"],
        id="too-many-elements",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "fragments"), HOSTILE_BODIES)
def test_deploy_server_hostile_body_is_refused_clearly(
    client: TestClient, body: str | bytes, status: int, code: str, fragments: list[str]
) -> None:
    response = client.post(PREDICT, content=body, headers=JSON)
    _error(response, status, code, *fragments)
    _still_serves(client)


def test_deploy_server_wrong_content_type_is_415(client: TestClient) -> None:
    body = json.dumps(_valid())
    _error(
        client.post(PREDICT, content=body, headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
        "'text/plain'",
    )
    _error(client.post(PREDICT, content=body), 415, "unsupported_media_type", "no Content-Type")
    form = client.post(PREDICT, data={"inputs": "x"})
    _error(form, 415, "unsupported_media_type")
    _still_serves(client)


def test_deploy_server_int_input_rejects_floats_booleans_and_overflow(client: TestClient) -> None:
    url = "/v1/models/int-sum/predict"
    _error(
        client.post(url, json={"inputs": {"ids": [[1, 2, 3.5, 4]]}}),
        422,
        "invalid_dtype",
        "inputs.ids[0][2]: expected an integer for int64, got 3.5 (a float)",
    )
    _error(
        client.post(url, json={"inputs": {"ids": [[1, False, 3, 4]]}}),
        422,
        "invalid_dtype",
        "inputs.ids[0][1]",
        "false (a boolean)",
    )
    _error(
        client.post(
            url, content='{"inputs": {"ids": [[1, 2, 3, 1' + "0" * 30 + "]]}}", headers=JSON
        ),
        422,
        "out_of_range",
        "inputs.ids[0][3] is out of range for int64",
    )
    ok = client.post(url, json={"inputs": {"ids": [[1, 2, 3, 4], [-1, -2, -3, -4]]}})
    assert ok.status_code == 200 and ok.json()["outputs"]["y"] == [10.0, -10.0]


def test_deploy_server_bad_names_and_path_traversal(client: TestClient) -> None:
    _error(
        client.post("/v1/models/no-such-model/predict", json=_valid()),
        404,
        "model_not_found",
        "model 'no-such-model' is not in the repository",
    )
    _error(client.get("/v1/models/no-such-model"), 404, "model_not_found")
    _error(
        client.post("/v1/models/Bad_Name/predict", json=_valid()),
        400,
        "invalid_name",
        "invalid model name 'Bad_Name'",
    )
    _error(client.post("/v1/models/" + "a" * 65 + "/predict", json=_valid()), 400, "invalid_name")
    # An encoded slash never reaches the file system: no route has a name with a slash.
    traversal = client.post("/v1/models/..%2F..%2Fetc/predict", json=_valid())
    assert traversal.status_code in (400, 404)
    assert traversal.json()["error"]["code"] in ("invalid_name", "not_found")
    dots = client.post("/v1/models/%2E%2E/predict", json=_valid())
    assert dots.status_code in (400, 404), dots.text
    _error(
        client.post(PREDICT, params={"version": "../../etc"}, json=_valid()),
        400,
        "invalid_name",
        "invalid model version '../../etc'",
    )
    _error(
        client.post(PREDICT, params={"version": "7"}, json=_valid()),
        404,
        "version_not_found",
        "model 'digits-cnn' has no version '7'; it has ['1']",
    )
    _error(client.get("/v1/nothing"), 404, "not_found", "no route /v1/nothing")
    _error(client.get(PREDICT), 405, "method_not_allowed")
    _still_serves(client)


def test_deploy_server_oversize_body_by_content_length(client: TestClient) -> None:
    big = json.dumps({"inputs": {"input": [_image(0.123456789)] * 200}})
    assert len(big) > 64 * 1024
    _error(
        client.post(PREDICT, content=big, headers=JSON),
        413,
        "body_too_large",
        "the limit is 65536 bytes",
    )
    _still_serves(client)


def test_deploy_server_oversize_chunked_body_is_counted_as_it_streams(repo: Path) -> None:
    # Straight to the ASGI app: chunks without a Content-Length, as a chunked upload arrives.
    settings = ServerSettings(limits=LimitsSettings(max_body_bytes=10_000))
    app = create_app(settings, repo=repo)
    chunk = b"[" + b"0.5," * 1000
    chunks_sent = 0

    async def scenario() -> tuple[int, dict[str, Any]]:
        nonlocal chunks_sent
        messages: list[Message] = []

        async def receive() -> dict[str, Any]:
            nonlocal chunks_sent
            chunks_sent += 1
            if chunks_sent > 1000:  # the app should have stopped reading long before
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: Message) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PREDICT,
            "raw_path": PREDICT.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
        }
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return int(start["status"]), json.loads(body)

    status, body = asyncio.run(scenario())
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert "streamed" in body["error"]["message"]
    assert chunks_sent <= 4  # refused as soon as the running count passed the limit


def test_deploy_server_integrity_failures_are_409_and_others_keep_serving(
    repo: Path, h: Any
) -> None:
    # digits-cnn/2: a copy of version 1 whose model file was changed after the manifest.
    source = repo / "digits-cnn" / "1"
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["version"] = "2"
    tampered = repo / "digits-cnn" / "2"
    tampered.mkdir()
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    for entry in manifest["files"]:
        data = bytearray((source / entry["path"]).read_bytes())
        if entry["role"] == "model":
            data[len(data) // 2] ^= 0xFF  # same size, another sha256
        (tampered / entry["path"]).write_bytes(bytes(data))
    # A model folder that is a symlink, and a version folder that is a symlink.
    (repo / "linked").symlink_to(repo / "digits-cnn", target_is_directory=True)
    (repo / "digits-cnn" / "3").symlink_to(source, target_is_directory=True)

    with TestClient(create_app(ServerSettings(preload=[]), repo=repo)) as client:
        latest = client.post(PREDICT, json=_valid())
        _error(
            latest,
            409,
            "integrity_check_failed",
            "model digits-cnn/2 failed its integrity check",
            "sha256",
            "the manifest says",
        )
        assert str(repo) not in latest.json()["error"]["message"]  # paths shown as <repo>
        _error(client.get("/v1/models/digits-cnn"), 409, "integrity_check_failed")
        _error(
            client.post("/v1/models/linked/predict", json=_valid()),
            409,
            "unsafe_path",
            "model linked is refused",
            "symlink",
        )
        _error(
            client.post(PREDICT, params={"version": "3"}, json=_valid()),
            409,
            "unsafe_path",
            "model digits-cnn/3 is refused",
            "symlink",
        )
        ok = client.post(PREDICT, params={"version": "1"}, json=_valid())
        assert ok.status_code == 200, ok.text
        listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert "linked" not in listed
        assert [v["version"] for v in listed["digits-cnn"]["versions"]] == ["1", "2"]
        text = client.get("/metrics").text
        assert h.metric_value(text, "as_deploy_model_load_failures_total", model="digits-cnn") >= 1
