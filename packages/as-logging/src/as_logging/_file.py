"""The JSON-lines file handler under the log directory, with size-based rotation."""

from __future__ import annotations

from logging.handlers import RotatingFileHandler
from pathlib import Path

from as_logging._json import JsonFormatter
from as_logging.exceptions import LogDirectoryError


def open_json_file(
    log_dir: Path, filename: str, *, max_bytes: int, backup_count: int
) -> RotatingFileHandler:
    """Create ``log_dir`` (with its parents) and open the rotating JSON-lines file in it.

    Args:
        log_dir: The log directory; created when missing.
        filename: The file name inside ``log_dir``.
        max_bytes: Roll over before the file would reach this size; 0 never rolls over.
        backup_count: How many rolled-over files (``name.1`` ... ``name.N``) to keep.

    Returns:
        The open handler, with :class:`JsonFormatter` set.

    Raises:
        LogDirectoryError: The directory cannot be created or the file cannot be opened.
    """
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        msg = f"cannot use log directory {log_dir}: it exists and is not a directory"
        raise LogDirectoryError(msg, path=log_dir, errno=exc.errno) from exc
    except NotADirectoryError as exc:
        msg = f"cannot create log directory {log_dir}: one of its parents is a file"
        raise LogDirectoryError(msg, path=log_dir, errno=exc.errno) from exc
    except OSError as exc:
        msg = f"cannot create log directory {log_dir}: {exc.strerror or exc}"
        raise LogDirectoryError(msg, path=log_dir, errno=exc.errno) from exc
    log_file = log_dir / filename
    try:
        # delay=False: a file that cannot be opened fails here, inside configure(), with a
        # clear error, rather than at the first record with a traceback on stderr.
        # errors="backslashreplace" is a second line of defence: JsonFormatter already
        # yields only encodable text.
        handler = RotatingFileHandler(
            log_file,
            maxBytes=max_bytes,
            backupCount=backup_count,
            encoding="utf-8",
            errors="backslashreplace",
        )
    except IsADirectoryError as exc:
        msg = f"cannot open log file {log_file}: it is a directory"
        raise LogDirectoryError(msg, path=log_file, errno=exc.errno) from exc
    except OSError as exc:
        msg = f"cannot open log file {log_file} for writing: {exc.strerror or exc}"
        raise LogDirectoryError(msg, path=log_file, errno=exc.errno) from exc
    handler.setFormatter(JsonFormatter())
    return handler
