"""The FastAPI app: :func:`create_app`, its routes, error handlers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from as_deploy._version import __version__
from as_deploy.manifest import NAME_PATTERN
from as_deploy.repository import ModelRepository, version_key
from as_deploy.runtime import RunnerError
from as_deploy.server._metrics import CONTENT_TYPE_LATEST
from as_deploy.server._middleware import (
    MODEL_SCOPE_KEY,
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
)
from as_deploy.server._models import ModelManager
from as_deploy.server._schemas import (
    ErrorResponse,
    Health,
    ModelInfo,
    ModelList,
    ModelSummary,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    Readiness,
)
from as_deploy.server._state import ServerState
from as_deploy.server._tensors import (
    batch_rows,
    outputs_json,
    parse_json,
    predictions,
    to_arrays,
)
from as_deploy.server.errors import (
    InferenceTimeoutError,
    OverloadedError,
    ServerError,
    UnsupportedMediaTypeError,
)
from as_deploy.settings import ServerSettings

__all__ = ["create_app", "default_repository"]

logger = logging.getLogger(__name__)

_ERROR_TEXT = {
    400: "Malformed JSON, nesting too deep, or an invalid model name or version.",
    404: "No such model or version.",
    409: "The model exists but failed to load (integrity check, symlink, bad file).",
    413: "The body or the number of tensor elements is over the limit.",
    415: "The body is not application/json.",
    422: "The inputs do not fit the model: names, shape, dtype or values.",
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


def default_repository() -> Path:
    """Return the folder of the default model repository shipped in the package."""
    return Path(str(importlib.resources.files("as_deploy") / "_default_model"))


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


def _error_response(error: ServerError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def server_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServerError)
        return _error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"no route {request.url.path}"}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        error = ServerError(message, code=codes.get(exc.status_code, "http_error"))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        error = ServerError("; ".join(problems) or "invalid request", code="invalid_request")
        return JSONResponse(error.body(), status_code=422)

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        error = ServerError(f"internal error: {type(exc).__name__}", code="internal_error")
        return JSONResponse(error.body(), status_code=500)

    app.add_exception_handler(ServerError, server_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _lifespan(state: ServerState) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = state.settings
        state.draining = False
        state.executor = ThreadPoolExecutor(
            max_workers=settings.runtime.inference_workers, thread_name_prefix="as-deploy-infer"
        )
        state.models = ModelManager(state.repository, settings, state.executor, state.metrics)
        state.models.arriving = lambda: state.arriving
        # In the background: /health answers while the models load, /ready says when done.
        state.preload_task = asyncio.get_running_loop().create_task(
            state.models.preload(settings.preload), name="as-deploy preload"
        )
        logger.info("serving the model repository %s", state.repository.root)
        try:
            yield
        finally:
            state.draining = True
            state.preload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.preload_task
            # Drain: every queued request still runs and gets its answer.
            await state.models.close()
            state.executor.shutdown(wait=True)
            logger.info("model server stopped")

    return lifespan


def create_app(settings: ServerSettings | None = None, *, repo: Path | None = None) -> FastAPI:
    """Build the model server's FastAPI app.

    The models load when the app's lifespan starts (uvicorn runs it; in tests use
    ``with TestClient(app)``): the preload list in the background, every other model on
    its first request.

    Args:
        settings: The server settings; defaults (and ``AS_DEPLOY__*`` variables) if
            ``None``.
        repo: The model repository; overrides ``settings.repo``. With neither, the
            default model shipped in the package is served.

    Returns:
        The app; its state is ``app.state.server`` (:class:`ServerState`).
    """
    settings = settings if settings is not None else ServerSettings()
    root = Path(repo) if repo is not None else settings.repo or default_repository()
    state = ServerState(settings=settings, repository=ModelRepository(root))
    app = FastAPI(
        title="as-deploy model server",
        version=__version__,
        description=(
            "Serves the models of an as-deploy model repository with ONNX Runtime, with "
            "dynamic batching. Errors are JSON: "
            '`{"error": {"code": ..., "message": ..., "detail": ...}}`.'
        ),
        lifespan=_lifespan(state),
    )
    app.state.server = state
    _install_error_handlers(app)
    # add_middleware wraps: the last added runs first (access log, concurrency, body).
    app.add_middleware(BodyLimitMiddleware, state=state)
    app.add_middleware(ConcurrencyLimitMiddleware, state=state)
    app.add_middleware(AccessLogMiddleware, state=state)
    _add_routes(app)
    _add_request_schema(app)
    return app


def _add_request_schema(app: FastAPI) -> None:
    """Put :class:`PredictRequest` in the OpenAPI components (the route reads raw bytes)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["PredictRequest"] = PredictRequest.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_routes(app: FastAPI) -> None:
    app.get("/health", response_model=Health, tags=["health"], summary="The process is alive")(
        _health
    )
    app.get(
        "/ready",
        response_model=Readiness,
        tags=["health"],
        summary="Whether the configured models are loaded",
        responses={
            503: {"model": Readiness, "description": "Not ready (loading, failed, stopping)."}
        },
    )(_ready)
    app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics text."}},
    )(_metrics)
    app.get(
        "/v1/models",
        response_model=ModelList,
        tags=["models"],
        summary="Every model in the repository",
    )(_list_models)
    app.get(
        "/v1/models/{name}",
        response_model=ModelInfo,
        tags=["models"],
        summary="One model version's inputs, outputs and labels",
        responses=_MODEL_ERRORS,
    )(_model_info)
    app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        tags=["models"],
        summary="Run the model on a batch of inputs",
        responses={code: _ERRORS[code] for code in _ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
                },
            }
        },
    )(_predict)


async def _health() -> Health:
    return Health()


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
    elif models.preload_errors:
        body = Readiness(
            ready=False, status="failed", loaded=loaded, errors=dict(models.preload_errors)
        )
    elif not models.preload_done:
        body = Readiness(
            ready=False, status="loading", loaded=loaded, pending=list(models.preload_pending)
        )
    else:
        body = Readiness(ready=True, status="ready", loaded=loaded)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


async def _metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


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


async def _model_info(request: Request, name: NameParam, version: VersionQuery = None) -> ModelInfo:
    manager = _manager(_state(request))
    key = await asyncio.to_thread(manager.resolve, name, version)
    entry = manager.entry(key)
    model = entry.model if entry is not None else await asyncio.to_thread(manager.read, key)
    manifest = model.manifest
    versions = await asyncio.to_thread(manager.repository.versions, name)
    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        versions=versions,
        loaded=entry is not None,
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


async def _predict(request: Request, name: NameParam, version: VersionQuery = None) -> Response:
    state = _state(request)
    manager = _manager(state)
    limits = state.settings.limits
    _check_json(request)
    state.arriving += 1
    try:
        data = parse_json(await request.body(), limits.max_json_depth)
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
            outputs = await asyncio.wait_for(
                entry.unit.submit(arrays, rows), limits.request_timeout_s
            )
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
    body: dict[str, Any] = {
        "model": manifest.name,
        "version": manifest.version,
        "outputs": outputs_json(outputs),
    }
    top = predictions(manifest, outputs)
    if top is not None:
        body["predictions"] = top
    try:
        content = json.dumps(body, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ServerError(
            f"model {manifest.name}/{manifest.version} produced values that are not finite",
            code="non_finite_output",
        ) from None
    return Response(content, media_type="application/json")
