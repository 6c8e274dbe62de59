"""Files of results: atomic writes and reads that name the file and the fault.

Writes go through :mod:`as_core.fs`: a temporary file in the target's folder, flushed to
disk, then renamed over the target, so a reader sees the old file or the new one, never
half of one, and a crash leaves at worst a stray hidden ``*.tmp`` file
(:data:`~as_core.fs.TEMP_SUFFIX`) that readers ignore.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO

from as_bench.exceptions import CorruptResultError, ResultStoreError
from as_bench.results._schema import BenchmarkResult, parse_result
from as_core.fs import TEMP_SUFFIX, write_bytes_atomic

__all__ = [
    "TEMP_SUFFIX",
    "atomic_write",
    "read_json",
    "read_result_file",
    "read_results_json",
]

logger = logging.getLogger(__name__)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically (:func:`as_core.fs.write_bytes_atomic`): ``write`` fills it.

    Args:
        path: The file to create or replace; its folder is created if missing.
        write: Writes the content to the binary file object it is given.

    Returns:
        ``path``.

    Raises:
        ResultStoreError: The file could not be written (the message names it).
    """
    try:
        return write_bytes_atomic(path, write)
    except ResultStoreError:
        raise
    except OSError as exc:
        raise ResultStoreError(f"could not write {path}: {exc}") from exc


def read_json(path: Path) -> object:
    """Decode the JSON file ``path``.

    Raises:
        CorruptResultError: The file is empty, truncated, not UTF-8 or not JSON; the
            reason gives the line and column where decoding stopped.
        ResultStoreError: The file could not be read at all.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultStoreError(f"could not read {path}: {exc}") from exc
    if not raw.strip():
        raise CorruptResultError(path, "the file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptResultError(path, f"not UTF-8 text (byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Cut short: decoding ran into the end, or a string the end left open.
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        hint = " (truncated?)" if cut else ""
        raise CorruptResultError(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from exc


def read_result_file(path: Path) -> BenchmarkResult:
    """Read one result written by the store (a single JSON object).

    Raises:
        CorruptResultError: The file is not valid JSON or not a valid result.
    """
    return parse_result(read_json(path), path)


def read_results_json(path: Path) -> list[BenchmarkResult]:
    """Read a JSON file that holds one result object or a list of them (an export).

    Raises:
        CorruptResultError: The file is not valid JSON, or an item is not a valid result
            (the reason starts with the item's index, e.g. ``[3].batch_size``).
    """
    data = read_json(path)
    if isinstance(data, list):
        return [parse_result(item, path, where=f"[{i}].") for i, item in enumerate(data)]
    return [parse_result(data, path)]
