"""Property-based tests of the server's whole HTTP API, generated from its own OpenAPI.

Schemathesis reads ``/openapi.json`` from a real ``as-deploy serve`` process (the
embedded default model, over TCP) and sends every operation generated requests: valid
ones, and, in negative mode, ones that break the schema (wrong types, missing fields,
hostile strings in path and query). The server must never answer 5xx, and what it
answers must match what its OpenAPI document says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EMBEDDED = Path(__file__).resolve().parents[2] / "src" / "as_deploy" / "_default_model"

pytestmark = [
    pytest.mark.slow,
    # One worker runs the whole module under pytest-xdist, so the server starts once.
    pytest.mark.xdist_group("deploy-schema-fuzz"),
    pytest.mark.skipif(
        not (EMBEDDED / "digits-cnn").is_dir(), reason="the embedded default model is missing"
    ),
]


@pytest.fixture(scope="module")
def served(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """A running server (embedded model) and the schema loaded from its /openapi.json."""
    server = h.ServerProcess([], tmp_path_factory.mktemp("fuzz-server"))
    try:
        server.wait_ready()
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json"), server.url
    finally:
        server.stop()
    # A crash would show as a non-zero exit; a clean SIGTERM shutdown exits 0.
    assert server.process.returncode == 0, server.output()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("POST", "/v1/models/{name}/predict"),
]


# schemathesis.pytest.from_fixture reads a private pytest attribute that pytest 9 removed,
# so each operation's strategy is driven by hypothesis directly; the checks are the same.
# Negative mode breaks parameters and bodies, so it applies where an operation has some.
# Random names almost never hit the served model, so the operations on a model also run
# with the name fixed to it: generated bodies and queries then reach the model itself.
CASES: list[tuple[str, str, GenerationMode, str | None]] = [
    (method, path, mode, None) for method, path in OPERATIONS for mode in [GenerationMode.POSITIVE]
]
CASES += [
    (method, path, mode, name)
    for method, path in OPERATIONS
    if "{name}" in path
    for mode in GenerationMode
    for name in (None, "digits-cnn")
    if (mode, name) != (GenerationMode.POSITIVE, None)
]


@pytest.mark.parametrize(("method", "path", "mode", "name"), CASES)
def test_no_server_errors_and_answers_match_the_schema(
    served: tuple[Any, str], method: str, path: str, mode: GenerationMode, name: str | None
) -> None:
    schema, url = served
    operation = schema[path][method]
    fixed = {"path_parameters": {"name": name}} if name else {}

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=CHECKS)

    run()


def test_the_schema_lists_every_endpoint(served: tuple[Any, str]) -> None:
    schema, _ = served
    listed = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert set(OPERATIONS) <= listed
