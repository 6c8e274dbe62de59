"""Benchmark results: the versioned record, the store, frames and exports.

- :class:`BenchmarkResult` is the one record of a run (with :class:`OutputCheck` and
  :class:`GitInfo`); files carry ``schema_version`` and newer versions are refused by name.
- :class:`ResultStore` keeps one JSON file per result in a folder: appends are atomic and
  safe from several processes at once; a corrupt file is named and the rest still load.
  A session's results form a *run*, numbered per machine (:meth:`ResultStore.new_run`,
  :func:`machine_id`); :func:`summarize_runs` and :func:`select_run` list and pick them.
- :func:`results_to_frame`, :func:`read_results` give a polars DataFrame with the same
  columns from a store, JSON, CSV or Parquet; :func:`export_results` and
  :meth:`ResultStore.export` write those formats atomically.

Importing this module does not import polars; the functions that need it do.
"""

from as_bench.results._export import SUPPORTED_SUFFIXES, ExportFormat, export_results
from as_bench.results._frame import frame_schema, results_to_frame
from as_bench.results._git import git_info
from as_bench.results._read import read_result_objects, read_results
from as_bench.results._runs import RunSummary, machine_id, select_run, summarize_runs
from as_bench.results._schema import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    BenchmarkResult,
    GitInfo,
    OutputCheck,
)
from as_bench.results._store import OnError, ResultStore

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "SUPPORTED_SUFFIXES",
    "BenchmarkResult",
    "ExportFormat",
    "GitInfo",
    "OnError",
    "OutputCheck",
    "ResultStore",
    "RunSummary",
    "export_results",
    "frame_schema",
    "git_info",
    "machine_id",
    "read_result_objects",
    "read_results",
    "results_to_frame",
    "select_run",
    "summarize_runs",
]
