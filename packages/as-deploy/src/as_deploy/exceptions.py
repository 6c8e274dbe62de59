"""Errors raised by as-deploy: one tree, for the exporter, the repository, runners and server.

Every error the package raises on purpose derives from :class:`AsDeployError`; each
subclass also derives from the built-in exception a caller would expect, so
``except FileNotFoundError`` or ``except ValueError`` keeps working::

    AsDeployError
    ├── InvalidNameError (ValueError)
    ├── ManifestError (ValueError)
    ├── UsageError (ValueError)
    ├── MissingExtraError (as_core.MissingExtraError, ImportError)
    │       an extra is not installed; MissingRuntimeError is the same class
    ├── ExportError (RuntimeError)
    │   └── ParityError (ValueError)
    ├── RepositoryError (OSError)
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   ├── VersionExistsError (FileExistsError)
    │   ├── UnsafePathError (PermissionError)
    │   └── IntegrityError
    ├── RunnerError (RuntimeError)          a runner could not load or run a model
    ├── ListenError (OSError)               ``as-deploy serve`` cannot listen on host:port
    └── ServerError                         what the server answers with: status_code, code
        ├── BadRequestError (ValueError)     400: malformed JSON, nesting too deep, bad name
        ├── NotFoundError (LookupError)      404: no such model, version or route
        ├── ModelUnavailableError            409: the model exists but failed to load
        ├── PayloadTooLargeError             413: body or element count over the limit
        ├── UnsupportedMediaTypeError        415: the body is not application/json
        ├── InvalidInputError (ValueError)   422: inputs with the wrong names, shape, dtype
        ├── OverloadedError                  503: too many requests in flight, shutting down
        └── InferenceTimeoutError            504: the prediction took too long

A :class:`ServerError` becomes the JSON body
``{"error": {"code": ..., "message": ..., "detail": ...}}``. ``as_deploy.server.errors``
and ``as_deploy.runtime.errors`` re-export their part of this tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import as_core

if TYPE_CHECKING:
    from as_deploy.manifest import ParityReport

__all__ = [
    "AsDeployError",
    "BadRequestError",
    "ExportError",
    "InferenceTimeoutError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "ListenError",
    "ManifestError",
    "MissingExtraError",
    "MissingRuntimeError",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "ParityError",
    "PayloadTooLargeError",
    "RepositoryError",
    "RunnerError",
    "ServerError",
    "UnsafePathError",
    "UnsupportedMediaTypeError",
    "UsageError",
    "VersionExistsError",
    "install_hint",
]


class AsDeployError(Exception):
    """Base class of every error as-deploy raises on purpose."""


class InvalidNameError(AsDeployError, ValueError):
    """A model name or version does not match ``^[a-z0-9][a-z0-9._-]{0,63}$``."""

    hint = "use lowercase letters, digits, '.', '_' and '-', e.g. 'digits-cnn' or '1.0'"


class ManifestError(AsDeployError, ValueError):
    """A manifest is not valid JSON or not a valid manifest.

    The message names the file and every bad key.

    Attributes:
        path: The manifest file, or ``None`` when the manifest did not come from a file.
        reason: What is wrong, in words.
    """

    def __init__(self, path: Path | None, reason: str) -> None:
        """Create the error for ``path`` (``None`` if not from a file) and ``reason``."""
        self.path = path
        self.reason = reason
        where = str(path) if path is not None else "manifest"
        super().__init__(f"{where}: {reason}")


class UsageError(AsDeployError, ValueError):
    """A command or function was given options that do not fit together or a bad value.

    Attributes:
        hint: What to do instead, in words (the CLI prints it after the message).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        """Create the error with ``message`` and an optional ``hint``."""
        super().__init__(message)
        self.hint = hint


class RepositoryError(AsDeployError, OSError):
    """The model repository could not be read or written."""


class ModelNotFoundError(RepositoryError, FileNotFoundError):
    """No such model, version or file in the repository."""


class VersionExistsError(RepositoryError, FileExistsError):
    """The version already exists; the repository never overwrites a version."""

    hint = "a version is never overwritten: write a new version (--version)"


class UnsafePathError(RepositoryError, PermissionError):
    """A path is a symlink or leads outside the repository; it is refused."""


class IntegrityError(RepositoryError):
    """A file's size or sha256 does not match the manifest."""


class MissingExtraError(AsDeployError, as_core.MissingExtraError):
    """An optional library that a feature needs is not installed.

    The message and :attr:`hint` give the exact command that installs as-deploy's extra
    (``uv add "as-deploy[tflite]"``); the attributes are :class:`as_core.MissingExtraError`'s
    (``module``, ``extra``, ``feature``, ``hint``).
    """

    package: ClassVar[str] = "as-deploy"


#: A model format's runtime is not installed (the name the runners used): the same class.
MissingRuntimeError = MissingExtraError


def install_hint(extra: str) -> str:
    """The command that installs as-deploy's ``extra``: ``uv add "as-deploy[<extra>]"``."""
    return as_core.install_hint(MissingExtraError.package, extra)


class ExportError(AsDeployError, RuntimeError):
    """Exporting a model failed: loading the source, converting it or running the result."""


class ParityError(ExportError, ValueError):
    """The exported model's outputs differ from eager PyTorch's beyond the tolerances.

    Nothing is written to the repository when it is raised. The message carries the
    figures; so do the attributes.

    Attributes:
        format: The export format (``"onnx"``, ``"coreml"``, ``"tflite"``).
        report: The parity report (``passed`` is false); ``None`` when a figure is not
            finite (the exported model produced NaN or inf), which a report cannot hold.
        failures: What failed, in words.
        max_abs_error: Largest absolute difference (``inf`` with non-finite outputs).
        max_rel_error: Largest relative difference.
        top1_agreement: Fraction of rows whose arg-max class agrees; ``None`` when the
            outputs are not class scores.
        atol: Absolute tolerance used.
        rtol: Relative tolerance used.
        inputs_checked: How many inputs were compared.
        hint: What to do about it.
    """

    def __init__(
        self,
        *,
        format: str,
        failures: list[str],
        max_abs_error: float,
        max_rel_error: float,
        top1_agreement: float | None,
        atol: float,
        rtol: float,
        inputs_checked: int,
        report: ParityReport | None = None,
    ) -> None:
        """Record the figures of a failed parity check (see the class docstring)."""
        self.format = format
        self.failures = list(failures)
        self.max_abs_error = max_abs_error
        self.max_rel_error = max_rel_error
        self.top1_agreement = top1_agreement
        self.atol = atol
        self.rtol = rtol
        self.inputs_checked = inputs_checked
        self.report = report
        self.hint = (
            "nothing was written; check the model for operations that the runtime computes "
            "differently, or pass looser --atol/--rtol if this error is acceptable"
        )
        top1 = "n/a" if top1_agreement is None else f"{top1_agreement:.4f}"
        super().__init__(
            f"{format} parity check failed on {inputs_checked} inputs: max abs error "
            f"{max_abs_error:.3g} (atol {atol:g}), max rel error {max_rel_error:.3g} "
            f"(rtol {rtol:g}), top-1 agreement {top1}: " + "; ".join(self.failures)
        )


class RunnerError(AsDeployError, RuntimeError):
    """A runner could not load or run a model; the message names the model and the cause."""


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
        """Return the JSON body of the error response.

        Text that UTF-8 cannot hold (a lone surrogate such as U+D800, which a JSON body can
        spell as an escape) is written as its Python escape, so that an error about such a
        name can always be sent.
        """
        body: dict[str, Any] = _sendable(
            {"error": {"code": self.code, "message": self.message, "detail": self.detail}}
        )
        return body


def _sendable(value: Any) -> Any:
    """``value`` with every string that UTF-8 cannot encode written with escapes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sendable(item) for item in value]
    return value


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
