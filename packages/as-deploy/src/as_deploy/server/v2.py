"""The Open Inference Protocol (KServe v2, Triton's HTTP API) next to the server's own API.

:data:`router` (tag ``v2``) serves, for the same models as ``/v1``:

- ``GET /v2``: server metadata (name, version, extensions);
- ``GET /v2/health/live`` and ``GET /v2/health/ready``: 200 when true, 400 when not;
- ``GET /v2/models/{name}[/versions/{version}]``: model metadata (datatypes such as
  ``FP32``, shapes with ``-1`` for a dynamic dimension);
- ``GET /v2/models/{name}[/versions/{version}]/ready``: 200 when the version is loaded;
- ``POST /v2/models/{name}[/versions/{version}]/infer``: inference, with JSON tensors or
  the binary tensor data extension (:mod:`as_deploy.server._v2_codec`), and the
  classification extension (``parameters.classification`` on an output: the top classes
  as ``"score:index:label"`` strings).

Inference goes through the same model manager and batcher as ``/v1`` predictions, so the
limits (body size, elements, concurrency, timeout), dynamic batching and the metrics
apply alike. Errors answer ``{"error": "<message>"}`` as the protocol asks
(:class:`V2ErrorMiddleware` rewrites the server's error bodies under ``/v2``): 400 for a
request that does not fit, 404 for an unknown model or version, and the server's other
statuses (409, 413, 415, 503, 504) as ``/v1`` has them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from as_deploy._version import __version__
from as_deploy.exceptions import (
    BadRequestError,
    InferenceTimeoutError,
    InvalidInputError,
    RunnerError,
    ServerError,
)
from as_deploy.manifest import NAME_PATTERN, Manifest
from as_deploy.server._middleware import MODEL_SCOPE_KEY
from as_deploy.server._tensors import batch_rows, parse_json
from as_deploy.server._v2_codec import (
    HEADER_LENGTH,
    datatype_of,
    decode_body,
    decode_inputs,
    encode_response,
    metadata_shape,
    parse_request,
    requested_outputs,
    split_body,
)
from as_deploy.server.routes import _manager, _state  # one home for both

__all__ = ["EXTENSIONS", "V2ErrorMiddleware", "router"]

#: The protocol extensions this server implements, as ``GET /v2`` lists them.
EXTENSIONS = ["binary_tensor_data", "classification"]

#: ``/v2`` and below.
router = APIRouter(tags=["v2"])

_PLATFORMS = {"onnx": "onnxruntime_onnx"}


class V2Error(BaseModel):
    """The body of every error under ``/v2``."""

    error: str = Field(description="What went wrong and where, in words.")


class V2ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    """``GET /v2/health/live``."""

    live: bool


class V2Ready(BaseModel):
    """``GET /v2/health/ready``: 200 when ready, 400 when not."""

    ready: bool


class V2ModelReady(BaseModel):
    """``GET /v2/models/{name}/ready``: 200 when the version is loaded, 400 when not."""

    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    """One input or output: its name, datatype (``FP32``) and shape (``-1``: dynamic)."""

    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{version}]``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": V2Error, "description": text}
    for code, text in {
        400: "The request does not fit the model (names, datatype, shape, data, binary sizes).",
        404: "No such model or version.",
        409: "The model exists but failed to load.",
        413: "The body or the number of tensor elements is over the limit.",
        503: "Too many requests in flight, or the server is starting or stopping.",
        504: "The inference did not finish within the request timeout.",
    }.items()
}
_METADATA_ERRORS: dict[int | str, dict[str, Any]] = {
    code: _ERRORS[code] for code in (400, 404, 409, 503)
}

NameParam = Annotated[
    str, PathParam(description="The model's name.", json_schema_extra={"pattern": NAME_PATTERN})
]
VersionParam = Annotated[
    str, PathParam(description="The model's version.", json_schema_extra={"pattern": NAME_PATTERN})
]


# -- health and metadata -----------------------------------------------------------------


@router.get("/v2", response_model=V2ServerMetadata, summary="Server metadata")
async def _server_metadata() -> V2ServerMetadata:
    return V2ServerMetadata(name="as-deploy", version=__version__, extensions=EXTENSIONS)


@router.get("/v2/health/live", response_model=V2Live, summary="The server is live")
async def _live() -> V2Live:
    return V2Live(live=True)


@router.get(
    "/v2/health/ready",
    response_model=V2Ready,
    summary="Whether the configured models are loaded",
    responses={400: {"model": V2Ready, "description": "Not ready (loading, failed, stopping)."}},
)
async def _ready(request: Request) -> JSONResponse:
    state = _state(request)
    models = state.models
    ready = (
        not state.draining
        and models is not None
        and not models.closed
        and models.preload_done
        and not models.preload_errors
    )
    return JSONResponse({"ready": ready}, status_code=200 if ready else 400)


async def _model_metadata(request: Request, name: str, version: str | None) -> V2ModelMetadata:
    manager = _manager(_state(request))
    # The cached listing and verification, and the bounded load slots, as /v1 uses them.
    model, _, versions = await manager.describe(name, version)
    manifest = model.manifest
    return V2ModelMetadata(
        name=manifest.name,
        versions=versions,
        platform=_PLATFORMS.get(manifest.format, manifest.format),
        inputs=[
            V2TensorMetadata(name=s.name, datatype=datatype_of(s.dtype), shape=metadata_shape(s))
            for s in manifest.inputs
        ],
        outputs=[
            V2TensorMetadata(name=s.name, datatype=datatype_of(s.dtype), shape=metadata_shape(s))
            for s in manifest.outputs
        ],
    )


@router.get(
    "/v2/models/{name}",
    response_model=V2ModelMetadata,
    summary="Model metadata (the latest version)",
    responses=_METADATA_ERRORS,
)
async def _metadata_latest(request: Request, name: NameParam) -> V2ModelMetadata:
    return await _model_metadata(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}",
    response_model=V2ModelMetadata,
    summary="Model metadata (one version)",
    responses=_METADATA_ERRORS,
)
async def _metadata_version(
    request: Request, name: NameParam, version: VersionParam
) -> V2ModelMetadata:
    return await _model_metadata(request, name, version)


async def _model_ready(request: Request, name: str, version: str | None) -> JSONResponse:
    state = _state(request)
    manager = _manager(state)
    key, _ = await manager.resolve_key(name, version)
    ready = not state.draining and manager.entry(key) is not None
    return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 400)


_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": V2ModelReady, "description": "Not loaded (it loads on its first infer)."},
    404: _ERRORS[404],
    409: _ERRORS[409],
    503: _ERRORS[503],
}


@router.get(
    "/v2/models/{name}/ready",
    response_model=V2ModelReady,
    summary="Whether the model's latest version is loaded",
    responses=_READY_RESPONSES,
)
async def _ready_latest(request: Request, name: NameParam) -> JSONResponse:
    return await _model_ready(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    response_model=V2ModelReady,
    summary="Whether one version of the model is loaded",
    responses=_READY_RESPONSES,
)
async def _ready_version(request: Request, name: NameParam, version: VersionParam) -> JSONResponse:
    return await _model_ready(request, name, version)


# -- inference ---------------------------------------------------------------------------

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "A JSON inference request; with the binary tensor data extension, the JSON "
            f"(its length in the {HEADER_LENGTH} header) followed by the inputs' bytes."
        ),
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 1, 8, 8],
                            "datatype": "FP32",
                            "data": [0.0] * 64,
                        }
                    ],
                    "outputs": [{"name": "logits"}],
                },
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The outputs: JSON, or (when an output is asked for as binary) "
            f"application/octet-stream with the JSON's length in {HEADER_LENGTH}."
        ),
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **_ERRORS,
}


async def _infer(request: Request, name: str, version: str | None) -> Response:
    state = _state(request)
    manager = _manager(state)
    limits = state.settings.limits
    state.arriving += 1
    try:
        body = decode_body(
            await request.body(), request.headers.get("content-encoding"), limits.max_body_bytes
        )
        header_length = request.headers.get(HEADER_LENGTH)
        header, binary = split_body(body, header_length)
        parsed = parse_request(_parse_header(header, header_length, limits.max_json_depth))
        entry = await manager.acquire(name, version)
    except BaseException:
        state.arriving -= 1
        raise
    try:
        manifest = entry.manifest
        request.scope[MODEL_SCOPE_KEY] = manifest.name
        try:
            arrays = decode_inputs(parsed, binary, manifest, limits.max_elements)
            wanted = requested_outputs(parsed, manifest)
            rows = _rows(arrays, manifest)
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
    encoded = encode_response(manifest, parsed.id, outputs, wanted)
    headers = {} if encoded.header_length is None else {HEADER_LENGTH: str(encoded.header_length)}
    return Response(encoded.body, media_type=encoded.media_type, headers=headers)


def _parse_header(header: bytes, header_length: str | None, max_depth: int) -> Any:
    try:
        return parse_json(header, max_depth)
    except BadRequestError as exc:
        if header_length is not None or exc.code != "malformed_json":
            raise
        raise BadRequestError(
            f"{exc.message}; a body that carries binary tensor data after the JSON must give "
            f"the JSON's length in the {HEADER_LENGTH} header",
            code=exc.code,
            detail=exc.detail,
        ) from None


def _rows(arrays: dict[str, Any], manifest: Manifest) -> int:
    try:
        return batch_rows(arrays, manifest) or 1
    except InvalidInputError as exc:  # the protocol answers 400 for inputs that do not fit
        raise BadRequestError(exc.message, code=exc.code, detail=exc.detail) from None


@router.post(
    "/v2/models/{name}/infer",
    summary="Inference on the model's latest version",
    response_class=Response,
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def _infer_latest(request: Request, name: NameParam) -> Response:
    return await _infer(request, name, None)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    summary="Inference on one version of the model",
    response_class=Response,
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def _infer_version(request: Request, name: NameParam, version: VersionParam) -> Response:
    return await _infer(request, name, version)


# -- error bodies ------------------------------------------------------------------------


def _is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def _v2_error_body(body: bytes) -> bytes | None:
    """``{"error": {"message": m, ...}}`` -> ``{"error": m}``; ``None`` for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    message = data["error"].get("message")
    if not isinstance(message, str):
        return None
    return json.dumps({"error": message}).encode()


class V2ErrorMiddleware:
    """Answers errors under ``/v2`` as ``{"error": "<message>"}``, as the protocol asks.

    The server's handlers and middleware answer ``{"error": {"code", "message",
    "detail"}}``; under ``/v2`` this rewrites such bodies (of any status from 400) to the
    protocol's shape, keeping the status and the other headers. Add it outside the
    middleware whose errors it should rewrite.

    Args:
        app: The wrapped app.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, rewriting an error body on its way out."""
        if scope["type"] != "http" or not _is_v2(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and int(message["status"]) >= 400:
                start = message  # held until the whole body is here
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            rewritten = _v2_error_body(body)
            if rewritten is not None:
                body = rewritten
                headers = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
                ]
                headers.append((b"content-length", str(len(body)).encode()))
                start = {**start, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_wrapper)
