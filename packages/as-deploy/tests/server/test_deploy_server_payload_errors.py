"""Payloads the client got wrong get a 4xx that says what, on the default model; /docs is offline.

Served by the app with no repository, that is the digits model shipped in the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from as_deploy.server import create_app
from as_deploy.server.app import default_repository
from as_deploy.settings import ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # The default model shipped in the package, whatever AS_DEPLOY__REPO says.
    with TestClient(create_app(ServerSettings(), repo=default_repository())) as test_client:
        yield test_client


def _image_json(value: str = "0.5") -> str:
    row = "[" + ", ".join([value] * 8) + "]"
    return "[[" + ", ".join([row] * 8) + "]]"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    return dict(error)


def _still_serves(client: TestClient) -> None:
    response = client.post(
        PREDICT, content='{"inputs": {"input": [' + _image_json() + "]}}", headers=JSON
    )
    assert response.status_code == 200, response.text


def test_a_lone_surrogate_as_the_input_name_is_named_in_a_422(client: TestClient) -> None:
    body = '{"inputs": {"\\ud800": [' + _image_json() + "]}}"
    error = _error(client.post(PREDICT, content=body, headers=JSON), 422, "invalid_inputs")
    assert "unknown input(s) ['\\ud800']" in error["message"]
    assert "missing input(s) ['input']" in error["message"]
    assert error["detail"]["unknown"] == ["\\ud800"]
    _still_serves(client)


def test_a_lone_surrogate_as_a_top_level_key_is_named_in_a_422(client: TestClient) -> None:
    body = '{"inputs": {"input": [' + _image_json() + ']}, "\\ud800": 1}'
    error = _error(client.post(PREDICT, content=body, headers=JSON), 422, "invalid_body")
    assert "unknown field(s) ['\\ud800']" in error["message"]
    assert error["detail"] == {"unknown": ["\\ud800"]}
    _still_serves(client)


def test_finite_inputs_that_overflow_the_model_are_a_422_that_says_why(
    client: TestClient,
) -> None:
    # 3e38 fits float32 (max 3.4e38), so the input check passes; the first layer's sums
    # overflow to infinity.
    body = '{"inputs": {"input": [' + _image_json("3e38") + "]}}"
    error = _error(client.post(PREDICT, content=body, headers=JSON), 422, "non_finite_output")
    assert "not finite" in error["message"]
    assert "for these inputs" in error["message"]
    assert "the largest |input| is 3e+38" in error["message"]
    assert re.fullmatch(r"outputs\.logits\[0\]\[\d\]", error["detail"]["location"]), error
    assert error["detail"]["max_abs_input"] == pytest.approx(3e38, rel=1e-6)
    _still_serves(client)


def _local_references(html: str) -> list[str]:
    """Every src=, href= and the schema url: that the page names."""
    found = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    found += re.findall(r"url: ?'([^']+)'", html)
    return [str(reference) for reference in found]


def test_docs_page_loads_nothing_from_another_host(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # No absolute URL at all: every script, style, icon and the schema come from here.
    assert re.findall(r"https?://", html) == []
    assert "validatorUrl" in html  # the validator badge (an external image) is off
    references = _local_references(html)
    assert sorted(references) == [
        "/docs/assets/favicon-32x32.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]
    types = {
        "js": "text/javascript",
        "css": "text/css",
        "png": "image/png",
        "json": "application/json",
    }
    for reference in references:
        assert urlsplit(reference).netloc == ""
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.headers["content-type"].startswith(types[reference.rsplit(".", 1)[1]])
        assert len(asset.content) > 100, reference
    assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").content


def test_docs_assets_serve_only_the_page_files(client: TestClient) -> None:
    for name in ("swagger-ui.js.map", "index.html", "..%2F__init__.py", "nothing.js"):
        error = _error(client.get(f"/docs/assets/{name}"), 404, "not_found")
        assert "documentation asset" in error["message"] or "no route" in error["message"]
    # ReDoc would load from a CDN too: it is not served.
    assert client.get("/redoc").status_code == 404
