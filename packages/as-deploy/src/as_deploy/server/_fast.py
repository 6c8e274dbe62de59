"""The inference routes, dispatched without FastAPI's router.

``POST /v1/models/{name}/predict`` and ``POST /v2/models/{name}[/versions/{v}]/infer``
are the routes a loaded server spends its time in. Each still is a FastAPI route (the
OpenAPI document and ``/docs`` describe them from there), but :class:`FastRoutes`, the
innermost middleware, answers them by calling the same handler functions directly:
FastAPI's route matching (the app's routes tried in order), its parameter solving and
the exception and exit-stack layers around every endpoint were a large part of each
request's cost on a small model. The handlers get the
same :class:`~starlette.requests.Request` and their :class:`ServerError` s become the
same JSON answers as through the app's exception handlers, and any other exception the
same 500 ``internal_error`` answer (logged with its traceback). Every other request, and
a predict with another method, goes through the router unchanged.

:func:`fast_stack` goes one step further for the app the server runs: the predict and
infer requests enter the server's own middleware (the same classes, in the same order)
straight from the app's ``__call__``, without Starlette's and FastAPI's layers around
the middleware (the outer error handler, FastAPI's telemetry and body layers), which
each wrapped every request and its ``send``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from as_deploy.exceptions import ServerError

__all__ = ["FastRoutes", "fast_route", "fast_stack"]

logger = logging.getLogger("as_deploy.server.app")

Handler = Callable[[Request, str, str | None], Awaitable[Response]]

# Starlette's "{name}" matches [^/]+ in the decoded path: the same here.
_ROUTES = re.compile(
    r"^/v1/models/(?P<v1>[^/]+)/predict$"
    r"|^/v2/models/(?P<v2>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$"
)


def fast_route(scope: Scope) -> bool:
    """Whether ``scope`` is a request that :class:`FastRoutes` answers itself."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return _ROUTES.match(path) is not None


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    # Never reached: fast_stack is only entered for requests that fast_route accepts.
    await JSONResponse({"error": {"code": "not_found"}}, status_code=404)(scope, receive, send)


def fast_stack(wrap: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    """:class:`FastRoutes` inside ``wrap``, the server's own middleware.

    The app's ``__call__`` sends the requests :func:`fast_route` accepts here instead of
    through Starlette's middleware stack; ``wrap`` must build the same middleware, in the
    same order, as the app has.
    """
    return wrap(FastRoutes(_not_found))


class FastRoutes:
    """Answers ``POST`` predict and infer requests by calling their handlers directly.

    Add it first (innermost), so that every other middleware still wraps these routes.

    Args:
        app: The wrapped app.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        from as_deploy.server import routes, v2

        self.app = app
        self.predict: Handler = routes._predict
        self.infer: Handler = v2._infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a predict or infer request; pass anything else on."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = _ROUTES.match(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if match.group("v1") is not None:
                name = match.group("v1")
                version = request.query_params.get("version") if scope.get("query_string") else None
                scope["path_params"] = {"name": name}
                response = await self.predict(request, name, version)
            else:
                name, version = match.group("v2"), match.group("version")
                scope["path_params"] = {"name": name} | ({"version": version} if version else {})
                response = await self.infer(request, name, version)
        except ServerError as error:
            response = JSONResponse(
                error.body(), status_code=error.status_code, headers=error.headers
            )
        except Exception as exc:  # the app's handler of unexpected errors answers the same
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            internal = ServerError(f"internal error: {type(exc).__name__}", code="internal_error")
            response = JSONResponse(internal.body(), status_code=500)
        await response(scope, receive, send)
