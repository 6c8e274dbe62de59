"""The console handler: rich on a terminal, plain lines otherwise, always on stderr."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler

from as_logging._encode import safe_repr
from as_logging._native import terminal_stderr
from as_logging._record import record_context, record_extras

PLAIN_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
PLAIN_DATEFMT = "%Y-%m-%d %H:%M:%S"


class ConsoleFormatter(logging.Formatter):
    """A formatter that appends the context fields and extras as ``[key=value ...]``."""

    # formatMessage, not format: the suffix belongs on the message line, before any
    # traceback, and RichHandler calls formatMessage itself when it renders a traceback.
    def formatMessage(self, record: logging.LogRecord) -> str:
        """Return the formatted message line with the record's fields appended."""
        text = super().formatMessage(record)
        fields = {**record_context(record), **record_extras(record)}
        if not fields:
            return text
        pairs = " ".join(f"{key}={_show(value)}" for key, value in fields.items())
        return f"{text} [{pairs}]"


def _show(value: object) -> str:
    return value if isinstance(value, str) else safe_repr(value)


def is_terminal(stream: object) -> bool:
    """Return whether ``stream`` is an interactive terminal (False when unsure)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def make_console_handler(
    *, stream: TextIO | None, rich_tracebacks: bool, force_plain: bool | None
) -> logging.Handler:
    """Build the console handler.

    Args:
        stream: Where to write; None means the current ``sys.stderr``, looked up anew at
            each write (the terminal's, during :func:`capture_native_output`).
        rich_tracebacks: Let rich render exceptions (rich handler only).
        force_plain: True for plain lines, False for rich output, None to pick rich only
            when the stream is a terminal.

    Returns:
        A :class:`rich.logging.RichHandler` or a plain :class:`logging.StreamHandler`.
    """
    target = stream if stream is not None else getattr(sys, "stderr", None)
    plain = force_plain if force_plain is not None else not is_terminal(target)
    handler: logging.Handler
    if plain:
        handler = logging.StreamHandler(stream if stream is not None else terminal_stderr())
        handler.setFormatter(ConsoleFormatter(PLAIN_FORMAT, PLAIN_DATEFMT))
    else:
        # terminal_stderr() looks sys.stderr up at each write (test runners and CLI runners
        # swap it and close their replacement), and stays on the terminal while
        # capture_native_output() holds descriptor 2.
        console = Console(file=stream if stream is not None else terminal_stderr())
        handler = RichHandler(console=console, rich_tracebacks=rich_tracebacks, markup=False)
        handler.setFormatter(ConsoleFormatter("%(message)s"))
    return handler
