"""Read results back from wherever they were put: a store folder, JSON, CSV or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from as_bench.exceptions import CorruptResultError, ResultStoreError
from as_bench.results._export import format_for
from as_bench.results._frame import conform, csv_schema_overrides, from_csv_frame, results_to_frame
from as_bench.results._io import read_results_json
from as_bench.results._schema import BenchmarkResult
from as_bench.results._store import OnError, ResultStore

if TYPE_CHECKING:
    import polars as pl

__all__ = ["read_result_objects", "read_results"]


def _existing(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ResultStoreError(f"no results at {path}: no such file or folder")
    return path


def read_result_objects(path: Path | str, *, on_error: OnError = "skip") -> list[BenchmarkResult]:
    """Read full results from a store folder, one result's JSON file or a JSON export.

    CSV and Parquet hold only the flat frame, not whole results: read those with
    :func:`read_results`.

    Args:
        path: A store folder, or a ``.json`` file holding one result or a list of them.
        on_error: For a store folder, what to do with corrupt files (see
            :meth:`ResultStore.load`). A single file that is corrupt always raises.

    Returns:
        The results: a store's sorted by start time, a file's in file order.

    Raises:
        CorruptResultError: A file is malformed (the message names it and says where).
        ResultStoreError: ``path`` does not exist or is not a JSON source.
    """
    path = _existing(path)
    if path.is_dir():
        return ResultStore(path, create=False).load(on_error=on_error)
    if format_for(path) != "json":
        raise ResultStoreError(
            f"{path} holds a flat table, not full results; read it with read_results()"
        )
    return read_results_json(path)


def _read_table(path: Path, kind: str) -> pl.DataFrame:
    import polars as pl

    try:
        if kind == "parquet":
            return pl.read_parquet(path)
        header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
        frame = pl.read_csv(path, schema_overrides=csv_schema_overrides(header))
    except pl.exceptions.PolarsError as exc:
        raise CorruptResultError(path, f"not a readable {kind} results table: {exc}") from exc
    except OSError as exc:
        # pyarrow and polars report a truncated Parquet file as an OSError.
        if not path.exists():
            raise ResultStoreError(f"could not read {path}: {exc}") from exc
        raise CorruptResultError(path, f"not a readable {kind} results table: {exc}") from exc
    return from_csv_frame(frame, path)


def read_results(path: Path | str, *, on_error: OnError = "skip") -> pl.DataFrame:
    """Read results from any place as-bench puts them, as one frame.

    Every source gives the same columns (see :func:`results_to_frame`): a store folder, a
    single result's ``.json`` file, a JSON export (a list of results), a CSV export (sample
    columns parsed back into lists) or a Parquet export.

    Args:
        path: Where the results are.
        on_error: For a store folder, what to do with corrupt files (see
            :meth:`ResultStore.load`); a single corrupt file always raises.

    Raises:
        CorruptResultError: A file is malformed; the message names it and the reason
            (line and column for broken JSON, the bad keys for a schema violation, the
            missing columns for a table).
        ResultStoreError: ``path`` does not exist or its suffix is not a supported one.
    """
    path = _existing(path)
    if path.is_dir():
        return ResultStore(path, create=False).to_frame(on_error=on_error)
    kind = format_for(path)
    if kind == "json":
        return results_to_frame(read_results_json(path))
    return conform(_read_table(path, kind), path)
