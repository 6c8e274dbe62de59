"""Export results to JSON, CSV or Parquet, each written atomically.

JSON keeps everything (a list of result objects that reads back into
:class:`BenchmarkResult`); CSV and Parquet hold the flat frame of
:func:`~as_bench.results.results_to_frame`, Parquet with the samples as list columns and
CSV with them as JSON text (CSV cells cannot nest).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Literal

from pydantic import TypeAdapter

from as_bench.exceptions import ResultStoreError
from as_bench.results._frame import results_to_frame, to_csv_frame
from as_bench.results._io import atomic_write
from as_bench.results._schema import BenchmarkResult

__all__ = ["SUPPORTED_SUFFIXES", "ExportFormat", "export_results", "format_for"]

ExportFormat = Literal["json", "csv", "parquet"]

SUPPORTED_SUFFIXES: dict[str, ExportFormat] = {
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_FORMATS: dict[str, ExportFormat] = {"json": "json", "csv": "csv", "parquet": "parquet"}

_RESULT_LIST = TypeAdapter(list[BenchmarkResult])


def format_for(path: Path, fmt: str | None = None) -> ExportFormat:
    """The format to use for ``path``: ``fmt`` when given, else the one its suffix names.

    Raises:
        ResultStoreError: ``fmt`` is not a known format, or ``fmt`` is ``None`` and the
            suffix is not one of the supported ones (the message lists them).
    """
    if fmt is not None:
        known = _FORMATS.get(fmt)
        if known is not None:
            return known
        formats = ", ".join(_FORMATS)
        raise ResultStoreError(f"unknown results format {fmt!r} for {path}; use one of {formats}")
    found = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if found is None:
        suffixes = ", ".join(SUPPORTED_SUFFIXES)
        raise ResultStoreError(
            f"cannot tell the results format of {path} from its suffix "
            f"{path.suffix or '(none)'!r}; supported: {suffixes}"
        )
    return found


def export_results(
    results: Iterable[BenchmarkResult], path: Path | str, fmt: ExportFormat | None = None
) -> Path:
    """Write ``results`` to one file, atomically.

    Args:
        results: The results, written in the order given.
        path: The file to write; missing parent folders are created.
        fmt: ``"json"``, ``"csv"`` or ``"parquet"``; taken from the suffix when ``None``.

    Returns:
        The path written.

    Raises:
        ResultStoreError: The format is unknown or the file could not be written.
    """
    path = Path(path)
    kind = format_for(path, fmt)
    results = list(results)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultStoreError(f"could not create the folder of {path}: {exc}") from exc

    def write(handle: IO[bytes]) -> None:
        if kind == "json":
            handle.write(_RESULT_LIST.dump_json(results, indent=2))
            handle.write(b"\n")
        elif kind == "csv":
            to_csv_frame(results_to_frame(results)).write_csv(handle)
        else:
            results_to_frame(results).write_parquet(handle)

    return atomic_write(path, write)
