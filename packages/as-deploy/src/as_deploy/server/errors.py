"""The errors the model server answers with; each carries its HTTP status and error code.

They live in :mod:`as_deploy.exceptions`, the package's one error tree (its docstring
draws it); this module re-exports the server's part of it.
"""

from __future__ import annotations

from as_deploy.exceptions import (
    BadRequestError,
    InferenceTimeoutError,
    InvalidInputError,
    ListenError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServerError,
    UnsupportedMediaTypeError,
)

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
