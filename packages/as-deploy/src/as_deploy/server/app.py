"""The FastAPI app factory: :func:`create_app` wires the routers, error handlers, lifespan.

The routes themselves are declared in :mod:`as_deploy.server.routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from as_deploy._version import __version__
from as_deploy.exceptions import ServerError
from as_deploy.repository import ModelRepository
from as_deploy.server import routes, v2
from as_deploy.server._docs import install_docs
from as_deploy.server._fast import FastRoutes, fast_route, fast_stack
from as_deploy.server._middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
)
from as_deploy.server._models import ModelManager
from as_deploy.server._schemas import PredictRequest
from as_deploy.server._state import ServerState
from as_deploy.settings import ServerSettings

__all__ = ["create_app", "default_repository"]

logger = logging.getLogger(__name__)


def default_repository() -> Path:
    """Return the folder of the default model repository shipped in the package."""
    return Path(str(importlib.resources.files("as_deploy") / "_default_model"))


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


class _ServerApp(FastAPI):
    """The server's FastAPI app: predict and infer requests take the short way in.

    They enter the server's middleware directly (:func:`~as_deploy.server._fast.fast_stack`),
    skipping the layers Starlette and FastAPI put around every request (FastAPI's native
    OpenTelemetry instrumentation among them: the server's own Prometheus metrics cover
    these routes). Every other request goes through the app as usual.
    """

    fast: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        fast = self.fast
        if fast is not None and scope["type"] == "http":
            if self.root_path:
                scope["root_path"] = self.root_path  # as FastAPI's own __call__ does
            if fast_route(scope):
                scope["app"] = self
                await fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


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
    app = _ServerApp(
        title="as-deploy model server",
        version=__version__,
        description=(
            "Serves the models of an as-deploy model repository with ONNX Runtime, with "
            "dynamic batching. Errors are JSON: "
            '`{"error": {"code": ..., "message": ..., "detail": ...}}`.'
        ),
        lifespan=_lifespan(state),
        # FastAPI's pages load from CDNs; install_docs serves /docs from the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    _install_error_handlers(app)
    # add_middleware wraps: the last added runs first (access log, body, concurrency): the
    # body is read whole, within its deadline, before the request takes a concurrency slot.
    # Innermost, the predict and infer routes skip FastAPI's router (see _fast).
    app.add_middleware(FastRoutes)
    app.add_middleware(ConcurrencyLimitMiddleware, state=state)
    app.add_middleware(BodyLimitMiddleware, state=state)
    app.add_middleware(AccessLogMiddleware, state=state)
    app.add_middleware(v2.V2ErrorMiddleware)  # outermost: /v2 errors in the protocol's shape

    def wrap(inner: ASGIApp) -> ASGIApp:  # the same middleware, in the same order
        limited = ConcurrencyLimitMiddleware(inner, state=state)
        read = BodyLimitMiddleware(limited, state=state)
        return v2.V2ErrorMiddleware(AccessLogMiddleware(read, state=state))

    app.fast = fast_stack(wrap)
    app.include_router(routes.health)
    app.include_router(routes.models)
    app.include_router(v2.router)
    _add_request_schema(app)
    install_docs(app)
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
