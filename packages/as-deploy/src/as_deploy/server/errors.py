"""Errors the model server answers with; each carries its HTTP status and error code.

Every one becomes the JSON body ``{"error": {"code": ..., "message": ..., "detail": ...}}``::

    AsDeployError
    └── ServerError                          status_code, code, detail
        ├── BadRequestError (ValueError)     400: malformed JSON, nesting too deep, bad name
        ├── NotFoundError (LookupError)      404: no such model, version or route
        ├── ModelUnavailableError            409: the model exists but failed to load
        ├── PayloadTooLargeError             413: body or element count over the limit
        ├── UnsupportedMediaTypeError        415: the body is not application/json
        ├── InvalidInputError (ValueError)   422: inputs with the wrong names, shape, dtype
        ├── OverloadedError                  503: too many requests in flight, shutting down
        └── InferenceTimeoutError            504: the prediction took too long

``ListenError`` (also an ``OSError``) is raised by ``as-deploy serve`` when it cannot
listen on the host and port.
"""

from __future__ import annotations

from typing import Any, ClassVar

from as_deploy.exceptions import AsDeployError

__all__ = [
    "BadRequestError",
    "InferenceTimeoutError",
    "InvalidInputError",
    "ListenError",
    "ModelUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ServerError",
    "UnsupportedMediaTypeError",
]


class ServerError(AsDeployError):
    """An error the server answers with instead of a result.

    Attributes:
        status_code: The HTTP status.
        code: A stable, machine-readable error code (``"invalid_input"``).
        message: What went wrong and where, in words.
        detail: Structured extras (the offending location, the limit), or ``None``.
        headers: Extra response headers (``Retry-After``).
    """

    status_code: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Create the error with its ``message`` and optional ``code``, ``detail``, ``headers``."""
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body of the error response."""
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class BadRequestError(ServerError, ValueError):
    """400: the request cannot be read (malformed JSON, too deep, an invalid name)."""

    status_code = 400
    default_code = "bad_request"


class NotFoundError(ServerError, LookupError):
    """404: no such model, version or route."""

    status_code = 404
    default_code = "not_found"


class ModelUnavailableError(ServerError):
    """409: the model exists but cannot be served (integrity check, symlink, bad file)."""

    status_code = 409
    default_code = "model_unavailable"


class PayloadTooLargeError(ServerError):
    """413: the body or the number of tensor elements is over the limit."""

    status_code = 413
    default_code = "payload_too_large"


class UnsupportedMediaTypeError(ServerError):
    """415: the body is not ``application/json``."""

    status_code = 415
    default_code = "unsupported_media_type"


class InvalidInputError(ServerError, ValueError):
    """422: the inputs do not fit the model (names, shape, dtype, values)."""

    status_code = 422
    default_code = "invalid_input"


class OverloadedError(ServerError):
    """503: too many requests in flight, the queue is full, or the server is stopping."""

    status_code = 503
    default_code = "overloaded"


class InferenceTimeoutError(ServerError):
    """504: the prediction did not finish within the request timeout."""

    status_code = 504
    default_code = "timeout"


class ListenError(AsDeployError, OSError):
    """The server could not listen on the host and port.

    Attributes:
        hint: What to do instead (the CLI prints it).
    """

    def __init__(
        self, message: str, hint: str = "pick another --port, or stop what uses it"
    ) -> None:
        """Create the error with ``message`` and a ``hint``."""
        super().__init__(message)
        self.hint = hint
