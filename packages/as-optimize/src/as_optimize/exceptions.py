"""Errors raised by as-optimize.

Every error the package raises on purpose derives from :class:`AsOptimizeError`, so a caller
can catch them all with one ``except`` clause; each subclass also derives from the built-in
exception a caller would expect::

    AsOptimizeError
    ├── MissingExtraError (as_core.MissingExtraError, ImportError)
    │       an optional library (torch, safetensors) is not installed
    ├── MonitorInputError (ValueError)        a value given to the training monitor is wrong
    ├── MetricsFileError (ValueError)         a metrics file holds a line that is not a record
    ├── CheckpointError (OSError)             a checkpoint could not be written or read
    │   ├── CheckpointWriteError              writing failed; the previous one is intact
    │   ├── CorruptCheckpointError (ValueError)
    │   │       a checkpoint's files do not match its manifest, or cannot be decoded
    │   └── NoCheckpointError (FileNotFoundError)
    │           no complete checkpoint to load
    ├── CheckpointStateError (ValueError)     a state cannot be saved without pickling
    ├── CompressionInputError (ValueError)    a model or option given to compression is wrong
    └── CompressionError                      compressing or evaluating a model failed
"""

from __future__ import annotations

from pathlib import Path

import as_core

__all__ = [
    "AsOptimizeError",
    "CheckpointError",
    "CheckpointStateError",
    "CheckpointWriteError",
    "CompressionError",
    "CompressionInputError",
    "CorruptCheckpointError",
    "MetricsFileError",
    "MissingExtraError",
    "MonitorInputError",
    "NoCheckpointError",
]


class AsOptimizeError(Exception):
    """Base class of every error as-optimize raises on purpose."""


class MissingExtraError(AsOptimizeError, as_core.MissingExtraError):
    """An optional library is missing; the message names the ``uv add`` command that fixes it."""

    package = "as-optimize"


class MonitorInputError(AsOptimizeError, ValueError):
    """A value given to the training monitor is wrong; the message names it and the step."""


class MetricsFileError(AsOptimizeError, ValueError):
    """A line of a metrics file is not a record; the message names the file and the line.

    Attributes:
        path: The file.
        line: The 1-based line number.
    """

    def __init__(self, message: str, *, path: Path, line: int) -> None:
        """Keep the file and line next to the message."""
        super().__init__(message)
        self.path = path
        self.line = line


class CheckpointError(AsOptimizeError, OSError):
    """A checkpoint could not be written or read.

    Attributes:
        path: The checkpoint folder (or file) concerned, when there is one.
    """

    def __init__(self, message: str, *, path: Path | None = None, errno: int | None = None) -> None:
        """Keep the path and the operating system's error number, when there is one."""
        super().__init__(message)
        self.path = path
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        """The message alone (OSError would prefix the errno)."""
        return str(self.args[0]) if self.args else ""


class CheckpointWriteError(CheckpointError):
    """Writing a checkpoint failed (disk full, permissions, I/O); the previous one is intact.

    Attributes:
        previous: The folder of the newest complete checkpoint before this attempt, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        errno: int | None = None,
        previous: Path | None = None,
    ) -> None:
        """Keep the previous checkpoint's folder too."""
        super().__init__(message, path=path, errno=errno)
        self.previous = previous


class CorruptCheckpointError(CheckpointError, ValueError):
    """A checkpoint's files do not match its manifest (size, sha256), or cannot be decoded."""


class NoCheckpointError(CheckpointError, FileNotFoundError):
    """There is no complete checkpoint to load."""


class CheckpointStateError(AsOptimizeError, ValueError):
    """A state (optimizer, scheduler, ...) holds a value that cannot be saved without pickling.

    The message names the value's place, for example ``optimizer.param_groups[0].fn``.
    """


class CompressionInputError(AsOptimizeError, ValueError):
    """A model, option or technique given to compression is wrong; the message names it."""


class CompressionError(AsOptimizeError):
    """Compressing, exporting or evaluating a model failed; the message says which step."""
