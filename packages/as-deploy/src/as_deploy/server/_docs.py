"""``GET /docs``: Swagger UI served from the package, so that it works offline.

FastAPI's own ``/docs`` page loads Swagger UI's script and style from a CDN, and its
``/redoc`` page loads ReDoc and fonts from others: on a machine without internet access
both pages stay blank. Here the page's script, style and icon come from the
``swagger-ui-bundle`` distribution (a dependency) and are served under
``/docs/assets/``; the page names no other host. ``/redoc`` is not served.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from as_deploy.exceptions import NotFoundError

__all__ = ["ASSETS", "DOCS_PATH", "install_docs"]

DOCS_PATH = "/docs"
"""Where the Swagger UI page is served."""

ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files of Swagger UI the page loads, with their media types; no other is served."""

# The page's parameters on top of FastAPI's defaults. No validator: Swagger UI would
# otherwise load a badge image from validator.swagger.io.
_UI_PARAMETERS = {"validatorUrl": None}


def _asset_folder() -> Path:
    return Path(str(swagger_ui_path))


def install_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` and ``GET /docs/assets/{name}`` to ``app`` (not in its schema).

    Build the app with ``docs_url=None`` and ``redoc_url=None`` so that FastAPI does not
    add its own pages, which load from the internet.
    """

    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        assets = f"{root}{DOCS_PATH}/assets"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=_UI_PARAMETERS,
        )

    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        path = _asset_folder() / name
        if media_type is None or not path.is_file():
            raise NotFoundError(
                f"no documentation asset {name!r}; the page loads {sorted(ASSETS)}",
                detail={"asset": name},
            )
        return FileResponse(
            path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"}
        )

    app.add_api_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        f"{DOCS_PATH}/assets/{{name}}", asset, methods=["GET"], include_in_schema=False
    )
