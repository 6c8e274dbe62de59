"""configure() and reset(): installing and removing as-logging's own handlers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

from as_logging._console import make_console_handler
from as_logging._context import ContextFilter
from as_logging._file import open_json_file
from as_logging._levels import parse_level
from as_logging.exceptions import ConfigurationError

DEFAULT_FILENAME = "as-toolkit.jsonl"

# The mark on every handler as-logging installs. An attribute rather than a subclass
# check, so handlers stay recognised even if the module is imported twice (pytest's
# importlib mode) and their classes differ.
_OWNED_ATTR = "_as_logging_owned"

# Guards the swap of handlers and the saved levels against concurrent configure() calls.
_lock = threading.RLock()
# Each logger's level before as-logging first configured it, restored by reset().
_saved_levels: dict[logging.Logger, int] = {}


@dataclass(frozen=True, slots=True)
class ConfigureResult:
    """What :func:`configure` installed.

    Attributes:
        logger: The logger the handlers were added to (the root logger by default).
        level: The level set on that logger: the lowest of the handler levels.
        console_handler: The console handler, or None when ``console=False``.
        file_handler: The JSON-lines file handler, or None without ``log_dir``.
        log_file: The absolute path of the current JSON-lines file, or None.
    """

    logger: logging.Logger
    level: int
    console_handler: logging.Handler | None
    file_handler: RotatingFileHandler | None
    log_file: Path | None


def configure(
    level: str | int = "INFO",
    *,
    console: bool = True,
    console_level: str | int | None = None,
    console_stream: TextIO | None = None,
    log_dir: str | Path | None = None,
    file_level: str | int | None = None,
    filename: str = DEFAULT_FILENAME,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    logger: str | None = None,
    rich_tracebacks: bool = True,
    force_plain: bool | None = None,
) -> ConfigureResult:
    """Install a console handler and, with ``log_dir``, a rotating JSON-lines file handler.

    Idempotent: handlers that an earlier call installed on the same logger are removed and
    closed first, so calling it again never duplicates output. Handlers that as-logging did
    not install are never touched. Arguments are all checked, and the log file opened,
    before anything changes: a call that raises leaves the previous setup in place.

    Args:
        level: The default level of both handlers: a name in any case (``"info"``,
            ``"WARNING"``) or one of 10, 20, 30, 40, 50.
        console: Whether to install the console handler.
        console_level: The console handler's level; defaults to ``level``.
        console_stream: Where the console handler writes; defaults to the current
            ``sys.stderr``.
        log_dir: The directory of the JSON-lines file; created with its parents when
            missing. None installs no file handler.
        file_level: The file handler's level; defaults to ``level``.
        filename: The file's name inside ``log_dir`` (no directory part).
        max_bytes: Roll the file over before it would reach this many bytes (counted in
            characters, so roughly bytes); 0 never rolls over.
        backup_count: How many rolled-over files to keep (``name.1`` is the newest);
            0 never rolls over.
        logger: The name of the logger to configure; None (or ``""``) is the root logger.
        rich_tracebacks: Let rich render exceptions when the console handler is rich.
        force_plain: True for plain console lines, False for rich output, None for rich
            only when the console stream is a terminal.

    Returns:
        What was installed, including the log file's path.

    Raises:
        InvalidLevelError: A level is not a standard level name or number.
        ConfigurationError: ``max_bytes``, ``backup_count`` or ``filename`` is invalid.
        LogDirectoryError: The log directory cannot be created or the file opened.
    """
    base = parse_level(level, "level")
    levels = {
        "console": base if console_level is None else parse_level(console_level, "console_level"),
        "file": base if file_level is None else parse_level(file_level, "file_level"),
    }
    _check_file_settings(filename, max_bytes, backup_count)
    target = logging.getLogger(logger or None)

    # The console handler first: it holds no file, so nothing leaks if opening the file fails.
    console_handler = None
    if console:
        console_handler = make_console_handler(
            stream=console_stream, rich_tracebacks=rich_tracebacks, force_plain=force_plain
        )
        console_handler.setLevel(levels["console"])
    file_handler: RotatingFileHandler | None = None
    log_file: Path | None = None
    if log_dir is not None:
        directory = Path(log_dir).expanduser()
        file_handler = open_json_file(
            directory, filename, max_bytes=max_bytes, backup_count=backup_count
        )
        file_handler.setLevel(levels["file"])
        log_file = Path(file_handler.baseFilename)

    installed = [h for h in (console_handler, file_handler) if h is not None]
    effective = min((h.level for h in installed), default=base)
    with _lock:
        _remove_owned(target)
        _saved_levels.setdefault(target, target.level)
        for handler in installed:
            setattr(handler, _OWNED_ATTR, True)
            handler.addFilter(ContextFilter())
            target.addHandler(handler)
        target.setLevel(effective)
    return ConfigureResult(target, effective, console_handler, file_handler, log_file)


def reset() -> None:
    """Remove and close every handler as-logging installed, on every logger.

    Handlers installed by anything else stay, and each configured logger gets back the
    level it had before the first :func:`configure` call. Useful in tests and before
    reconfiguring from scratch.
    """
    with _lock:
        manager = logging.Logger.manager
        loggers = [logging.getLogger()] + [
            item for item in list(manager.loggerDict.values()) if isinstance(item, logging.Logger)
        ]
        for item in loggers:
            _remove_owned(item)
        for item, level in _saved_levels.items():
            item.setLevel(level)
        _saved_levels.clear()


def get_logger(name: str | None = None) -> logging.Logger:
    """Return ``logging.getLogger(name)``; libraries pass ``__name__``.

    Args:
        name: The dotted logger name; None is the root logger.
    """
    return logging.getLogger(name)


def is_owned(handler: logging.Handler) -> bool:
    """Return whether ``handler`` was installed by :func:`configure`."""
    return getattr(handler, _OWNED_ATTR, False) is True


def _remove_owned(target: logging.Logger) -> None:
    for handler in [h for h in target.handlers if is_owned(h)]:
        # Removed before closed, so no other thread picks it up in between.
        target.removeHandler(handler)
        handler.close()


def _check_file_settings(filename: str, max_bytes: int, backup_count: int) -> None:
    if not filename or Path(filename).name != filename:
        msg = f"invalid filename {filename!r}: expected a file name with no directory part"
        raise ConfigurationError(msg)
    for name, value in (("max_bytes", max_bytes), ("backup_count", backup_count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            msg = f"invalid {name} {value!r}: expected an integer >= 0"
            raise ConfigurationError(msg)
