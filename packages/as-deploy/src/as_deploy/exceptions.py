"""Errors raised by as-deploy.

Every error the package raises on purpose derives from :class:`AsDeployError`; each
subclass also derives from the built-in exception a caller would expect, so
``except FileNotFoundError`` or ``except ValueError`` keeps working::

    AsDeployError
    ├── InvalidNameError (ValueError)
    ├── ManifestError (ValueError)
    ├── UsageError (ValueError)
    └── RepositoryError (OSError)
        ├── ModelNotFoundError (FileNotFoundError)
        ├── VersionExistsError (FileExistsError)
        ├── UnsafePathError (PermissionError)
        └── IntegrityError
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AsDeployError",
    "IntegrityError",
    "InvalidNameError",
    "ManifestError",
    "ModelNotFoundError",
    "RepositoryError",
    "UnsafePathError",
    "UsageError",
    "VersionExistsError",
]


class AsDeployError(Exception):
    """Base class of every error as-deploy raises on purpose."""


class InvalidNameError(AsDeployError, ValueError):
    """A model name or version does not match ``^[a-z0-9][a-z0-9._-]{0,63}$``."""


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


class UnsafePathError(RepositoryError, PermissionError):
    """A path is a symlink or leads outside the repository; it is refused."""


class IntegrityError(RepositoryError):
    """A file's size or sha256 does not match the manifest."""
