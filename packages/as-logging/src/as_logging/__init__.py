"""as-logging: structured logging for as-toolkit.

Applications call :func:`configure` once at start-up to get a console handler (rich on a
terminal, plain lines otherwise) and, with ``log_dir``, a rotating JSON-lines file;
libraries only call ``logging.getLogger(__name__)``. :func:`bind` adds context fields to
every record logged inside a ``with`` block, per thread and per asyncio task::

    import logging
    import as_logging

    as_logging.configure("info", log_dir="logs")
    log = logging.getLogger(__name__)
    with as_logging.bind(run_id="r42"):
        log.info("loaded %s", "resnet50", extra={"params": 25_557_032})

:func:`capture_native_output` sends what third-party code writes to the process's stderr
(C and C++ libraries included) to the log instead of the terminal.
"""

from as_logging._configure import ConfigureResult, configure, get_logger, reset
from as_logging._context import ContextFilter, bind, bound_context
from as_logging._json import JsonFormatter
from as_logging._native import CapturedOutput, capture_native_output, terminal_stderr
from as_logging._version import __version__
from as_logging.exceptions import (
    AsLoggingError,
    ConfigurationError,
    InvalidLevelError,
    LogDirectoryError,
)

__all__ = [
    "AsLoggingError",
    "CapturedOutput",
    "ConfigurationError",
    "ConfigureResult",
    "ContextFilter",
    "InvalidLevelError",
    "JsonFormatter",
    "LogDirectoryError",
    "__version__",
    "bind",
    "bound_context",
    "capture_native_output",
    "configure",
    "get_logger",
    "reset",
    "terminal_stderr",
]
