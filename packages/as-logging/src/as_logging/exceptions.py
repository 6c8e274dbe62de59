"""Errors raised by as-logging.

Every error the package raises on purpose derives from :class:`AsLoggingError`, so a caller
can catch them all with one ``except`` clause; each subclass also inherits the built-in it
refines, so ``except ValueError`` and ``except OSError`` keep working::

    AsLoggingError(Exception)
    ├── ConfigurationError(AsLoggingError, ValueError)   an argument of configure() is invalid
    │   └── InvalidLevelError                             a level is not a standard level
    └── LogDirectoryError(AsLoggingError, OSError)       the log directory or file is unusable
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AsLoggingError", "ConfigurationError", "InvalidLevelError", "LogDirectoryError"]


class AsLoggingError(Exception):
    """Base class of every error as-logging raises on purpose."""


class ConfigurationError(AsLoggingError, ValueError):
    """An argument of :func:`as_logging.configure` is invalid."""


class InvalidLevelError(ConfigurationError):
    """A log level is not one of the standard levels.

    Attributes:
        value: The rejected value, as the caller passed it.
        parameter: The name of the argument that held it (``level``, ``console_level``, ...).
    """

    # The extra attributes are keyword-only so that pickling, which rebuilds the error from
    # ``args`` (the message alone), still works; they fall back to their defaults then.
    def __init__(self, message: str, *, value: object = None, parameter: str = "level") -> None:
        """Create the error from its message and the rejected value."""
        super().__init__(message)
        self.value = value
        self.parameter = parameter


class LogDirectoryError(AsLoggingError, OSError):
    """The log directory cannot be created or the log file cannot be opened for writing.

    Attributes:
        path: The path at fault (the directory, one of its parents, or the log file).
    """

    def __init__(self, message: str, *, path: Path | None = None, errno: int | None = None) -> None:
        """Create the error from its message, the path at fault and the OS error number."""
        # One argument only: OSError then keeps the message as its str() instead of the
        # "[Errno N] ..." form, which would hide the hint in the message.
        super().__init__(message)
        self.path = path
        # Setting errno alone (without strerror or filename) leaves str() unchanged.
        self.errno = errno
