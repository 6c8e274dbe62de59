"""Errors raised by as-deploy.

Every error the package raises on purpose derives from :class:`AsDeployError`; each
subclass also derives from the built-in exception a caller would expect, so
``except FileNotFoundError`` or ``except ValueError`` keeps working::

    AsDeployError
    ├── InvalidNameError (ValueError)
    ├── ManifestError (ValueError)
    ├── UsageError (ValueError)
    ├── MissingExtraError (ImportError)
    ├── ExportError (RuntimeError)
    │   └── ParityError (ValueError)
    └── RepositoryError (OSError)
        ├── ModelNotFoundError (FileNotFoundError)
        ├── VersionExistsError (FileExistsError)
        ├── UnsafePathError (PermissionError)
        └── IntegrityError
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from as_deploy.manifest import ParityReport

__all__ = [
    "AsDeployError",
    "ExportError",
    "IntegrityError",
    "InvalidNameError",
    "ManifestError",
    "MissingExtraError",
    "ModelNotFoundError",
    "ParityError",
    "RepositoryError",
    "UnsafePathError",
    "UsageError",
    "VersionExistsError",
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


class MissingExtraError(AsDeployError, ImportError):
    """An optional library that a feature needs is not installed.

    The message and :attr:`hint` give the exact command that installs as-deploy's extra
    (``uv add "as-deploy[tflite]"``).

    Attributes:
        module: The import name that is missing (``"litert_torch"``).
        extra: The as-deploy extra that provides it (``"tflite"``).
        hint: The install command.
    """

    def __init__(self, module: str, extra: str, feature: str = "") -> None:
        """Record the missing ``module``, the ``extra`` that installs it and the ``feature``."""
        self.module = module
        self.extra = extra
        self.hint = install_hint(extra)
        what = f" ({feature} needs it)" if feature else ""
        super().__init__(
            f"{module!r} is not installed{what}; it comes with as-deploy's {extra!r} extra: "
            f"{self.hint}"
        )
        self.name = module


def install_hint(extra: str) -> str:
    """The command that installs as-deploy's ``extra``: ``uv add "as-deploy[<extra>]"``."""
    return f'uv add "as-deploy[{extra}]"  (or: pip install "as-deploy[{extra}]")'


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
