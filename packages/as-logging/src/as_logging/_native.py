"""capture_native_output(): what third-party code writes to the process's stderr, into the log.

C and C++ libraries (TensorFlow and absl through LiteRT, XNNPACK, CUDA) write to file
descriptor 2 directly, below Python's ``sys.stderr``; so do child processes, and Python
handlers that third-party libraries bind to ``sys.stderr`` when they are imported (torch's
logging). Only a redirection of the descriptor itself silences them. Inside the block,
descriptor 2 (and 1 with ``stdout=True``) points at an anonymous temporary file; on exit,
however the block ends, the descriptors are put back and every captured line becomes one
log record. A file rather than a pipe: writing never blocks, whatever the amount.

What as-logging itself prints stays on the terminal: its console handlers write to the
saved descriptor while a capture is active, and :attr:`CapturedOutput.stderr` is a stream
an application gives its own console for the same purpose.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TextIO

from as_logging._levels import parse_level

__all__ = ["CapturedOutput", "capture_native_output", "terminal_stderr"]

#: The logger that receives the captured lines unless the caller names another.
DEFAULT_LOGGER = "as_logging.native"
#: Lines beyond this many are counted, not logged, so a runaway library cannot flood the log.
DEFAULT_MAX_LINES = 10_000

# A glog/absl line: "I0000 00:00:1796414001.291150    5974 port.cc:153] message" or
# "W1204 19:53:17.952000 5974 torch/utils/cpp_extension.py:183] ...".
_GLOG = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]\s]+:\d+)\]")

# The terminal's stderr while captures are active: a stack of text streams on the saved
# descriptor, outermost first. Process-wide, like the descriptor it stands for.
_lock = threading.RLock()
_terminals: list[TextIO] = []


def _is_descriptor_2(stream: object) -> bool:
    try:
        return stream is not None and stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # no descriptor, closed or detached
        return False


class _TerminalStderr(io.TextIOBase):
    """The user's stderr: ``sys.stderr``, or the saved descriptor while a capture holds it.

    Never closed and never stale: a console or handler that keeps it keeps writing to the
    terminal after the capture ends.
    """

    def _target(self) -> TextIO | None:
        stream: TextIO | None = getattr(sys, "stderr", None)  # None under pythonw
        with _lock:
            # A sys.stderr that is not descriptor 2 (pytest's capture, a notebook) is not
            # captured: it stays the user's stderr during a capture too.
            if _terminals and _is_descriptor_2(stream):
                return _terminals[0]
        return stream

    def write(self, text: str) -> int:
        target = self._target()
        return target.write(text) if target is not None else len(text)

    def flush(self) -> None:
        target = self._target()
        if target is not None:
            target.flush()

    def isatty(self) -> bool:
        target = self._target()
        try:
            return bool(target is not None and target.isatty())
        except (OSError, ValueError):
            return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        target = self._target()
        return getattr(target, "encoding", None) or "utf-8"


def terminal_stderr() -> TextIO:
    """A stream to the user's stderr that stays on the terminal during a capture.

    Outside :func:`capture_native_output` it writes to the current ``sys.stderr``.
    as-logging's console handlers use it; give it to your own console
    (``rich.console.Console(file=terminal_stderr())``) for progress or messages that must
    reach the user while a capture holds descriptor 2.
    """
    return _TerminalStderr()  # type: ignore[return-value]  # a TextIOBase is a TextIO


@dataclass
class CapturedOutput:
    """What a :func:`capture_native_output` block captured; filled in when it ends.

    Attributes:
        stderr: A stream to the user's stderr, usable inside and after the block.
        lines: The captured lines (descriptor 2 first, then 1), without line ends, empty
            lines left out; every line is also logged.
        dropped: Lines beyond ``max_lines``: counted, not logged.
        warnings: How many Python warnings were logged instead of printed.
    """

    stderr: TextIO = field(default_factory=terminal_stderr)
    lines: list[str] = field(default_factory=list)
    dropped: int = 0
    warnings: int = 0


def _flush_all() -> None:
    """Flush Python's and C's buffered output, so it lands before the descriptors move."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        with contextlib.suppress(Exception):  # closed, detached or a test double
            if stream is not None:
                stream.flush()
    with contextlib.suppress(Exception):  # no libc (Windows) or no symbol: nothing to flush
        ctypes.CDLL(None).fflush(None)


@dataclass
class _Redirect:
    fd: int
    saved: int
    file: IO[bytes]


def _redirect(fd: int) -> _Redirect | None:
    """Point ``fd`` at a new temporary file; None when ``fd`` is not open."""
    try:
        saved = os.dup(fd)
    except OSError:  # a closed descriptor: nothing can write there, nothing to capture
        return None
    try:
        file = tempfile.TemporaryFile()  # closed in _restore
        try:
            os.dup2(file.fileno(), fd)
        except BaseException:
            file.close()
            raise
    except BaseException:
        os.close(saved)
        raise
    return _Redirect(fd, saved, file)


def _restore(redirect: _Redirect) -> bytes:
    """Put the descriptor back and return what was written to it."""
    try:
        os.dup2(redirect.saved, redirect.fd)
    finally:
        os.close(redirect.saved)
    try:
        redirect.file.seek(0)
        return redirect.file.read()
    finally:
        redirect.file.close()


def _log_lines(
    log: logging.Logger, level: int, data: bytes, stream: str, result: CapturedOutput, limit: int
) -> None:
    for line in data.decode("utf-8", errors="replace").splitlines():
        text = line.rstrip()
        if not text:
            continue
        if len(result.lines) >= limit:
            result.dropped += 1
            continue
        result.lines.append(text)
        extra: dict[str, object] = {"stream": stream}
        match = _GLOG.match(text)
        if match:
            extra["native_level"], extra["source"] = match.group(1), match.group(2)
        log.log(level, "%s", text, extra=extra)
    if result.dropped:
        log.log(level, "%d more line(s) of %s output not logged", result.dropped, stream)


@contextlib.contextmanager
def capture_native_output(
    logger: logging.Logger | str | None = None,
    *,
    level: str | int = "INFO",
    stdout: bool = False,
    capture_warnings: bool = True,
    max_lines: int = DEFAULT_MAX_LINES,
) -> Iterator[CapturedOutput]:
    """Send what is written to stderr inside the block, by anything, to the log instead.

    Descriptor 2 (the process's stderr, where C and C++ libraries, child processes and
    ``sys.stderr`` write) points at a temporary file inside the block; when the block ends,
    also by an exception, the descriptor is restored first and each captured line is then
    logged on ``logger`` at ``level``, with ``extra`` fields ``stream`` and, for glog/absl
    lines, ``native_level`` (I, W, E, F) and ``source`` (``file:line``). The exception, if
    any, propagates unchanged, after the lines are logged.

    as-logging's own console handlers keep writing to the terminal inside the block, and
    :attr:`CapturedOutput.stderr` is a stream that does the same for your own console.
    With ``capture_warnings``, Python warnings raised inside the block are logged on the
    ``py.warnings`` logger at ``level`` instead of printed (the warning filters still
    apply: a filter that turns a warning into an error still raises).

    Nothing is set in the environment: variables such as ``TF_CPP_MIN_LOG_LEVEL`` that a
    user set are respected, and without them the libraries' output is captured, not lost.

    When a descriptor is not open there is nothing to capture and it is left alone; when
    ``sys.stderr`` is not a real file (pytest's capture, a notebook), what Python writes to
    it is not captured (it never reaches descriptor 2) while C output still is. Blocks may
    nest; the captures are process-wide (descriptors are), so other threads' output is
    captured as well. A process that dies inside the block (a segmentation fault) loses
    what was captured.

    Args:
        logger: The logger (or its name) for the captured lines; default
            ``as_logging.native``.
        level: The level of the captured lines and warnings.
        stdout: Capture descriptor 1 (stdout) too.
        capture_warnings: Log Python warnings instead of printing them.
        max_lines: Log at most this many lines; the rest are counted in
            :attr:`CapturedOutput.dropped` and one record says how many.

    Yields:
        A :class:`CapturedOutput`, whose ``lines`` are filled in when the block ends.

    Raises:
        InvalidLevelError: ``level`` is not a standard level.
    """
    number = parse_level(level, "level")
    log = (
        logger
        if isinstance(logger, logging.Logger)
        else logging.getLogger(logger or DEFAULT_LOGGER)
    )
    result = CapturedOutput()
    _flush_all()
    redirects: list[_Redirect] = []
    terminal: TextIO | None = None
    try:
        for fd in (2, 1) if stdout else (2,):
            redirect = _redirect(fd)
            if redirect is not None:
                redirects.append(redirect)
        if redirects and redirects[0].fd == 2:
            # closefd=False: the descriptor is closed once, by _restore.
            terminal = open(  # closed in the finally below
                redirects[0].saved, "w", encoding="utf-8", errors="replace", closefd=False
            )
            with _lock:
                _terminals.append(terminal)
        with warnings.catch_warnings():
            if capture_warnings:
                warnings.showwarning = _warning_logger(number, result)
            yield result
    finally:
        _flush_all()
        if terminal is not None:
            with _lock:
                _terminals.remove(terminal)
            with contextlib.suppress(Exception):
                terminal.close()  # flushes; the descriptor stays open for _restore
        captured = []
        for redirect in reversed(redirects):  # stdout first, then stderr: the reverse of entry
            captured.append((redirect.fd, _restore(redirect)))
        for fd, data in sorted(captured, reverse=True):  # stderr (2) first
            _log_lines(log, number, data, "stderr" if fd == 2 else "stdout", result, max_lines)


def _warning_logger(level: int, result: CapturedOutput) -> Callable[..., None]:
    log = logging.getLogger("py.warnings")

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        result.warnings += 1
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        log.log(level, "%s", text, extra={"category": category.__name__})

    return show
