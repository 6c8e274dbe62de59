"""The server's routes, on two :class:`fastapi.APIRouter` s that :func:`create_app` includes.

:data:`health` (tag ``health``): ``GET /health``, ``GET /ready``, ``GET /metrics``.
:data:`models` (tag ``models``): ``GET /v1/models``, ``GET /v1/models/{name}`` and
``POST /v1/models/{name}/predict``. Every handler reads the app's
:class:`~as_deploy.server._state.ServerState` from ``request.app.state.server``; errors
are raised as :class:`~as_deploy.exceptions.ServerError` s, which the app's handlers turn
into JSON.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from as_deploy.exceptions import (
    InferenceTimeoutError,
    OverloadedError,
    RunnerError,
    ServerError,
    UnsupportedMediaTypeError,
)
from as_deploy.manifest import NAME_PATTERN
from as_deploy.repository import version_key
from as_deploy.server._metrics import CONTENT_TYPE_LATEST
from as_deploy.server._middleware import BODY_SCOPE_KEY, MODEL_SCOPE_KEY
from as_deploy.server._models import ModelManager
from as_deploy.server._schemas import (
    ErrorResponse,
    Health,
    ModelInfo,
    ModelList,
    ModelSummary,
    ModelVersionStatus,
    PredictResponse,
    Readiness,
)
from as_deploy.server._state import ServerState
from as_deploy.server._tensors import (
    batch_rows,
    check_finite_outputs,
    outputs_json,
    parse_json,
    predictions,
    to_arrays,
)

__all__ = ["health", "models"]

#: ``/health``, ``/ready`` and ``/metrics``.
health = APIRouter(tags=["health"])

#: ``/v1/models`` and below.
models = APIRouter(tags=["models"])

_ERROR_TEXT = {
    400: "Malformed JSON, nesting too deep, or an invalid model name or version.",
    404: "No such model or version.",
    409: "The model exists but failed to load (integrity check, symlink, bad file).",
    413: "The body or the number of tensor elements is over the limit.",
    415: "The body is not application/json.",
    422: "The inputs do not fit the model (names, shape, dtype, values) or make its outputs "
    "not finite.",
    503: "Too many requests in flight, or the server is starting or stopping; see Retry-After.",
    504: "The prediction did not finish within the request timeout.",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _ERROR_TEXT.items()
}
_MODEL_ERRORS: dict[int | str, dict[str, Any]] = {
    code: _ERRORS[code] for code in (400, 404, 409, 503)
}

NameParam = Annotated[
    str,
    PathParam(
        description="The model's name.",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]
VersionQuery = Annotated[
    str | None,
    Query(
        description="The version; the latest when left out.",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def _manager(state: ServerState) -> ModelManager:
    if state.models is None or state.models.closed:
        raise OverloadedError(
            "the server is not running (starting or stopping)",
            code="not_running",
            headers={"Retry-After": str(state.settings.limits.retry_after_s)},
        )
    return state.models


@health.get("/health", response_model=Health, summary="The process is alive")
async def _health() -> Health:
    return Health()


@health.get(
    "/ready",
    response_model=Readiness,
    summary="Whether the configured models are loaded",
    responses={503: {"model": Readiness, "description": "Not ready (loading, failed, stopping)."}},
)
async def _ready(request: Request) -> JSONResponse:
    state = _state(request)
    models = state.models
    loaded = [f"{n}/{v}" for n, v in models.loaded()] if models else []
    if state.draining or models is None or models.closed:
        body = Readiness(
            ready=False,
            status="shutting_down" if state.draining else "loading",
            loaded=loaded,
        )
    elif not models.preload_done:
        # Still loading the rest: "failed" is the settled state, once every model of the
        # list was tried (the failures so far are already listed).
        body = Readiness(
            ready=False,
            status="loading",
            loaded=loaded,
            pending=list(models.preload_pending),
            errors=dict(models.preload_errors),
        )
    elif models.preload_errors:
        body = Readiness(
            ready=False, status="failed", loaded=loaded, errors=dict(models.preload_errors)
        )
    else:
        # With the default preload a model that failed does not keep the others from
        # serving: ready, and the failures say which and why.
        body = Readiness(
            ready=True, status="ready", loaded=loaded, errors=dict(models.preload_failures)
        )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@health.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics text."}},
)
async def _metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@models.get("/v1/models", response_model=ModelList, summary="Every model in the repository")
async def _list_models(request: Request) -> ModelList:
    state = _state(request)
    listing = await asyncio.to_thread(state.repository.list_models)
    loaded = set(state.models.loaded()) if state.models else set()
    versions: dict[str, list[str]] = {}
    for name, version in listing:
        versions.setdefault(name, []).append(version)
    models = []
    for name, found in sorted(versions.items()):
        ordered = sorted(found, key=version_key)
        models.append(
            ModelSummary(
                name=name,
                latest=ordered[-1],
                versions=[
                    ModelVersionStatus(version=v, loaded=(name, v) in loaded) for v in ordered
                ],
            )
        )
    return ModelList(models=models)


@models.get(
    "/v1/models/{name}",
    response_model=ModelInfo,
    summary="One model version's inputs, outputs and labels",
    responses=_MODEL_ERRORS,
)
async def _model_info(request: Request, name: NameParam, version: VersionQuery = None) -> ModelInfo:
    manager = _manager(_state(request))
    # Verified (from the repository's cache when the files have not changed), not loaded;
    # a version that cannot be served answers the 409 a predict would get.
    model, state, versions = await manager.describe(name, version)
    manifest = model.manifest
    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        versions=versions,
        loaded=state == "loaded",
        state=state,
        format=manifest.format,
        inputs=manifest.inputs,
        outputs=manifest.outputs,
        labels=manifest.labels,
        preprocessing=manifest.preprocessing,
        parity=manifest.parity,
        provenance=manifest.provenance,
    )


def _check_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        got = f"{content_type!r}" if content_type else "no Content-Type"
        raise UnsupportedMediaTypeError(
            f"the body must be JSON sent with 'Content-Type: application/json', got {got}",
            detail={"content_type": content_type or None},
        )


@models.post(
    "/v1/models/{name}/predict",
    response_model=PredictResponse,
    summary="Run the model on a batch of inputs",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        }
    },
)
async def _predict(request: Request, name: NameParam, version: VersionQuery = None) -> Response:
    state = _state(request)
    manager = _manager(state)
    limits = state.settings.limits
    _check_json(request)
    state.arriving += 1
    try:
        raw = request.scope.get(BODY_SCOPE_KEY)
        if raw is None:
            raw = await request.body()
        data = parse_json(raw, limits.max_json_depth)
        entry = await manager.acquire(name, version)
    except BaseException:
        state.arriving -= 1
        raise
    try:
        manifest = entry.manifest
        request.scope[MODEL_SCOPE_KEY] = manifest.name
        try:
            arrays = to_arrays(data, manifest, limits.max_elements)
            rows = batch_rows(arrays, manifest) or 1
        finally:
            state.arriving -= 1
        try:
            # In this task (wait_for would start another one for every request).
            async with asyncio.timeout(limits.request_timeout_s):
                outputs = await entry.unit.submit(arrays, rows)
        except TimeoutError:
            raise InferenceTimeoutError(
                f"model {manifest.name}/{manifest.version} did not answer within "
                f"{limits.request_timeout_s:g} s (the request timeout); try fewer rows or "
                "retry later",
                detail={"timeout_s": limits.request_timeout_s},
            ) from None
        except RunnerError as exc:
            raise ServerError(
                f"model {manifest.name}/{manifest.version} failed to run: {exc}",
                code="inference_failed",
            ) from None
    finally:
        manager.release(entry)
    check_finite_outputs(manifest, arrays, outputs)
    body: dict[str, Any] = {
        "model": manifest.name,
        "version": manifest.version,
        "outputs": outputs_json(outputs),
    }
    top = predictions(manifest, outputs)
    if top is not None:
        body["predictions"] = top
    # The outputs were checked finite above (orjson would write NaN as null); orjson
    # writes the same compact JSON as json.dumps, several times faster.
    return Response(orjson.dumps(body), media_type="application/json")
