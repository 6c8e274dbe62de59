"""Keep the libraries' own output off the terminal of ``as-bench run``, in its log file.

Converting and running models makes TensorFlow and absl (through litert-torch and LiteRT)
print C++ INFO lines, torch print warnings (no CUDA runtime on a CPU machine, deprecations)
and XNNPACK announce itself, on the process's stderr. None of it is for the user of
``as-bench run``: :func:`library_output` wraps the run in
:func:`as_logging.capture_native_output`, which sends every line written to stderr
(descriptor 2, C and C++ included) and every Python warning to the log file
``<cache>/logs/as-bench.jsonl`` (the cache folder of as-bench: ``$AS_BENCH_CACHE_DIR``,
``~/.cache/as-bench`` or ``~/Library/Caches/as-bench``), and prints one line naming that
file when anything was kept there.

With the global ``--debug`` nothing is captured: the libraries' output reaches the
terminal as it happens, as does as-bench's debug logging.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from as_core.cli import console as make_console

__all__ = ["LOGGER", "LOG_FILENAME", "library_output", "log_dir"]

#: The log file's name inside :func:`log_dir` (rotated at 10 MiB, 5 backups kept).
LOG_FILENAME = "as-bench.jsonl"
#: The logger of the captured lines.
LOGGER = "as_bench.libraries"

_log = logging.getLogger(__name__)


def log_dir() -> Path:
    """Where ``as-bench run`` keeps its log: ``<as-bench cache folder>/logs``."""
    from as_bench.workloads._cache import cache_dir

    return cache_dir() / "logs"


@contextlib.contextmanager
def library_output(console: Console, *, debug: bool) -> Iterator[Console]:
    """Run the block with the libraries' stderr output going to the log file.

    Args:
        console: Where the command prints its progress; a console on stderr (``--json``)
            is replaced by one that stays on the terminal during the capture.
        debug: ``--debug``: capture nothing, the output reaches the terminal live.

    Yields:
        The console to print progress with inside the block.
    """
    if debug:
        yield console
        return
    import as_logging

    try:
        configured = as_logging.configure(
            "WARNING",
            file_level="INFO",
            log_dir=log_dir(),
            filename=LOG_FILENAME,
            rich_tracebacks=False,
        )
    except as_logging.LogDirectoryError as exc:  # a read-only home: run, but uncaptured
        _log.warning("library output is not captured: %s", exc)
        yield console
        return
    captured: as_logging.CapturedOutput | None = None
    try:
        with as_logging.capture_native_output(LOGGER) as captured:
            if console.stderr:
                console = make_console(stderr=True)
                console.file = captured.stderr
            yield console
    finally:  # also when the run fails: its error follows, and the log may explain it
        kept = 0 if captured is None else len(captured.lines) + captured.dropped
        kept += 0 if captured is None else captured.warnings
        if kept:
            make_console(stderr=True).print(
                f"[dim]{kept} line(s) of library output (TensorFlow, torch, ...) kept in "
                f"{escape(str(configured.log_file))}[/]"
            )
