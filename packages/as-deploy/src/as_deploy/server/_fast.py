"""The inference routes, dispatched without FastAPI's router.

``POST /v1/models/{name}/predict`` and ``POST /v2/models/{name}[/versions/{v}]/infer``
are the routes a loaded server spends its time in. Each still is a FastAPI route (the
OpenAPI document and ``/docs`` describe them from there), but :class:`FastRoutes`, the
innermost middleware, answers them by calling the same handler functions directly:
FastAPI's route matching (the app's routes tried in order), its parameter solving and
the exception and exit-stack layers around every endpoint were a large part of each
request's cost on a small model. The handlers get the
same :class:`~starlette.requests.Request` and their :class:`ServerError` s become the
same JSON answers as through the app's exception handlers; anything else goes on to the
app's outermost error handler as before. Every other request, and a predict with
another method, goes through the router unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from as_deploy.exceptions import ServerError

__all__ = ["FastRoutes"]

Handler = Callable[[Request, str, str | None], Awaitable[Response]]

# Starlette's "{name}" matches [^/]+ in the decoded path: the same here.
_ROUTES = re.compile(
    r"^/v1/models/(?P<v1>[^/]+)/predict$"
    r"|^/v2/models/(?P<v2>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$"
)


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
        await response(scope, receive, send)
