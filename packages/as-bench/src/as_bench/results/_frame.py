"""Results as a polars DataFrame: one row per result, flat columns, raw samples as lists.

The frame is what analysis, reports and the regression gate work from, and what CSV and
Parquet exports hold, so every reader (store folder, JSON, CSV, Parquet) returns the same
columns with the same types. Accuracy metrics become one ``accuracy_<metric>`` column each,
after the fixed columns, sorted by name.

polars is imported inside the functions: ``import as_bench`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from as_bench.exceptions import CorruptResultError
from as_bench.results._schema import BenchmarkResult

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ACCURACY_PREFIX",
    "LIST_COLUMNS",
    "conform",
    "csv_schema_overrides",
    "frame_schema",
    "from_csv_frame",
    "results_to_frame",
    "to_csv_frame",
]

ACCURACY_PREFIX = "accuracy_"
LIST_COLUMNS = ("samples_s", "device_samples_s")
"""Columns holding raw samples as ``list[f64]``; CSV holds them as JSON arrays in text."""


def frame_schema() -> dict[str, pl.DataType]:
    """The fixed columns of a results frame and their types, in order.

    ``accuracy_<metric>`` columns (``Float64``) follow these, one per metric present.
    """
    import polars as pl

    f64, i64, text, flag = pl.Float64(), pl.Int64(), pl.String(), pl.Boolean()
    utc = pl.Datetime("us", "UTC")
    samples = pl.List(pl.Float64())
    return {
        "id": text,
        "benchmark": text,
        "workload": text,
        "backend": text,
        "device": text,
        "batch_size": i64,
        "median_s": f64,
        "mean_s": f64,
        "stdev_s": f64,
        "min_s": f64,
        "max_s": f64,
        "p90_s": f64,
        "p95_s": f64,
        "p99_s": f64,
        "ci_low_s": f64,
        "ci_high_s": f64,
        "iqr_s": f64,
        "n_samples": i64,
        "inner_loops": i64,
        "converged": flag,
        "cold_start_s": f64,
        "device_median_s": f64,
        "throughput_items_per_s": f64,
        "host_peak_rss_bytes": i64,
        "device_peak_allocated_bytes": i64,
        "output_check_passed": flag,
        "model_size_bytes": i64,
        "started_at": utc,
        "finished_at": utc,
        "git_commit": text,
        "git_dirty": flag,
        "as_bench_version": text,
        "samples_s": samples,
        "device_samples_s": samples,
    }


def _row(result: BenchmarkResult) -> dict[str, Any]:
    m = result.measurement
    stats = m.latency.stats
    device = m.device_time
    return {
        "id": result.id,
        "benchmark": result.benchmark,
        "workload": result.workload,
        "backend": result.backend,
        "device": result.device,
        "batch_size": result.batch_size,
        "median_s": stats.median,
        "mean_s": stats.mean,
        "stdev_s": stats.stdev,
        "min_s": stats.min,
        "max_s": stats.max,
        "p90_s": stats.p90,
        "p95_s": stats.p95,
        "p99_s": stats.p99,
        "ci_low_s": stats.ci_low,
        "ci_high_s": stats.ci_high,
        "iqr_s": stats.iqr,
        "n_samples": stats.n,
        "inner_loops": m.inner_loops,
        "converged": m.converged,
        "cold_start_s": m.cold_start_s,
        "device_median_s": None if device is None else device.stats.median,
        "throughput_items_per_s": result.throughput_items_per_s,
        "host_peak_rss_bytes": m.memory.host_peak_rss_bytes,
        "device_peak_allocated_bytes": m.memory.device_peak_allocated_bytes,
        "output_check_passed": None if result.output_check is None else result.output_check.passed,
        "model_size_bytes": result.model_size_bytes,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "git_commit": None if result.git is None else result.git.commit,
        "git_dirty": None if result.git is None else result.git.dirty,
        "as_bench_version": result.as_bench_version,
        "samples_s": list(m.latency.samples_s),
        "device_samples_s": None if device is None else list(device.samples_s),
    }


def results_to_frame(results: Iterable[BenchmarkResult]) -> pl.DataFrame:
    """One row per result, in the order given, with the columns of :func:`frame_schema`.

    Args:
        results: The results.

    Returns:
        The frame; with no results, an empty frame that still has every fixed column.
    """
    import polars as pl

    results = list(results)
    schema = frame_schema()
    metrics = sorted({name for r in results for name in (r.accuracy or {})})
    for name in metrics:
        schema[ACCURACY_PREFIX + name] = pl.Float64()
    rows = []
    for result in results:
        row = _row(result)
        accuracy = result.accuracy or {}
        for name in metrics:
            row[ACCURACY_PREFIX + name] = accuracy.get(name)
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)


def _conform_error(path: Path, columns: Sequence[str]) -> CorruptResultError | None:
    missing = [name for name in frame_schema() if name not in columns]
    if missing:
        return CorruptResultError(
            path, f"not a results table: missing column(s) {', '.join(missing)}"
        )
    return None


def conform(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Check that ``frame`` (read from ``path``) has the fixed columns; cast and order them.

    Fixed columns come first in schema order, then ``accuracy_*`` columns sorted by name,
    then any other columns in the order found (kept so that a newer writer's extras survive).

    Raises:
        CorruptResultError: A fixed column is missing or cannot take its type.
    """
    import polars as pl

    error = _conform_error(path, frame.columns)
    if error is not None:
        raise error
    schema = frame_schema()
    accuracy = sorted(c for c in frame.columns if c.startswith(ACCURACY_PREFIX))
    for name in accuracy:
        schema[name] = pl.Float64()
    others = [c for c in frame.columns if c not in schema]
    try:
        casts = [pl.col(name).cast(dtype, strict=True) for name, dtype in schema.items()]
        return frame.select([*casts, *others])
    except pl.exceptions.PolarsError as exc:
        raise CorruptResultError(path, f"a column has the wrong type: {exc}") from exc


def to_csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its sample lists as JSON text, since CSV cells cannot nest."""
    import polars as pl

    # json.dumps writes floats with repr(), which reads back to the same double.
    encoded = [
        pl.Series(
            name,
            [None if v is None else json.dumps(v) for v in frame[name].to_list()],
            dtype=pl.String(),
        )
        for name in LIST_COLUMNS
        if name in frame.columns
    ]
    return frame.with_columns(encoded)


def _decode_samples(text: str | None, path: Path, column: str, row: int) -> list[float] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptResultError(path, f"row {row + 1}, column {column}: {exc}") from exc
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise CorruptResultError(path, f"row {row + 1}, column {column}: not a list of numbers")
    return [float(v) for v in value]


def from_csv_frame(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Parse the JSON sample columns of a frame read from CSV back into lists.

    Raises:
        CorruptResultError: A sample cell is not a JSON list of numbers.
    """
    import polars as pl

    decoded = [
        pl.Series(
            name,
            [
                _decode_samples(text, path, name, row)
                for row, text in enumerate(frame[name].cast(pl.String()).to_list())
            ],
            dtype=pl.List(pl.Float64()),
        )
        for name in LIST_COLUMNS
        if name in frame.columns
    ]
    return frame.with_columns(decoded)


def csv_schema_overrides(columns: Sequence[str]) -> dict[str, pl.DataType]:
    """The types to read a results CSV with, given its header (samples stay text)."""
    import polars as pl

    schema = frame_schema()
    overrides: dict[str, pl.DataType] = {}
    for name in columns:
        if name in LIST_COLUMNS:
            overrides[name] = pl.String()
        elif name in schema:
            overrides[name] = schema[name]
        elif name.startswith(ACCURACY_PREFIX):
            overrides[name] = pl.Float64()
    return overrides
