"""The per-run metrics file: JSON lines, rotated by size, read back as a polars frame.

One line per record: ``{"kind": "step", "step": 12, ...}`` for a training step,
``{"kind": "eval", "step": 12, ...metrics}`` for an evaluation, and ``{"kind": "resume",
"step": 10}`` where a run went back to a checkpoint (a restart or a rollback). Reading
applies the resume lines: records of steps after the checkpoint, written before the
resume, belong to a branch the run abandoned and are dropped, so the frame holds the run
as it finally went, one row per step (and per evaluation).

NaN and infinity are written as JSON's usual extensions ``NaN``, ``Infinity`` and
``-Infinity`` (Python, polars and pandas read them), so a non-finite loss stays visible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from as_core.fs import write_bytes_atomic
from as_optimize.exceptions import MetricsFileError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MetricsWriter",
    "StepValues",
    "export_metrics",
    "metrics_files",
    "read_metrics",
    "step_record",
]

logger = logging.getLogger("as_optimize.training")

DEFAULT_FILENAME = "metrics.jsonl"

# One encoder for every line: json.dumps(separators=...) builds a new one per call, which
# took 40% of a 6.7 us record.
_encode = json.JSONEncoder(separators=(",", ":")).encode


StepValues = tuple[Any, ...]
"""A step's figures as :meth:`MetricsWriter.write_step` takes them, formatted at flush:
``(step, epoch, time_s, loss, grad_norm, lrs, step_time_s, samples_per_s, memory)`` where
``lrs`` is a tuple (one per parameter group, None without an optimizer) and ``memory``
is ``(host_rss_bytes, device_allocated_bytes, device_reserved_bytes)`` or None."""


def step_record(values: StepValues) -> dict[str, Any]:
    """The record (the JSON object of its line) of a step's :data:`StepValues`."""
    step, epoch, time_s, loss, grad_norm, lrs, step_time, rate, memory = values
    record: dict[str, Any] = {
        "kind": "step",
        "step": step,
        "epoch": epoch,
        "time_s": time_s,
        "loss": loss,
        "grad_norm": grad_norm,
    }
    if lrs is None:
        record["lr"] = None
    else:
        for index, lr in enumerate(lrs):
            record["lr" if index == 0 else f"lr_{index}"] = lr
    record["step_time_s"] = step_time
    record["samples_per_s"] = rate
    if memory is not None:
        (
            record["host_rss_bytes"],
            record["device_allocated_bytes"],
            record["device_reserved_bytes"],
        ) = memory
    return record


class MetricsWriter:
    """Appends records to ``path`` as JSON lines, rotating by size like as-logging's files.

    Before a line would take the file past ``max_bytes`` (counted in characters) the file
    becomes ``name.1``, older ones shift to ``.2``, ``.3``, ... and only ``backup_count``
    are kept; ``0`` for either never rotates. Records are kept in memory and formatted
    and written in one ``write`` by :meth:`flush`, which the monitor calls before each
    checkpoint, at each event, every ``metrics.flush_every_s`` seconds and at the end (and
    :meth:`write` once ``buffer_records`` are pending): a crash loses only lines of steps
    after the last checkpoint, which the resumed run writes again. Formatting many lines
    at once, off the step, costs less than one at a time between a training step's
    kernels (whose data evict the interpreter's from the CPU caches).

    Args:
        path: The file; its folder is created.
        max_bytes: Rotate before the file would reach this size; 0 never rotates.
        backup_count: How many rotated files to keep; 0 never rotates.
        buffer_records: Flush once this many records are pending.
    """

    def __init__(
        self, path: Path, *, max_bytes: int, backup_count: int, buffer_records: int = 4096
    ) -> None:
        """Open ``path`` for appending; a torn last line (a killed writer) is ended first."""
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.buffer_records = buffer_records
        self._pending: list[Mapping[str, Any] | StepValues] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = _ends_torn(path)
        self._handle: IO[str] = path.open("a", encoding="utf-8", newline="\n")
        self._size = path.stat().st_size
        if torn:
            self._handle.write("\n")
            self._size += 1

    def write(self, record: Mapping[str, Any]) -> None:
        """Add one record (a JSON object of numbers, strings, None and flat lists)."""
        self._pending.append(record)
        if len(self._pending) >= self.buffer_records:
            self.flush()

    def write_step(self, values: StepValues) -> None:
        """Add a step's record, given as :data:`StepValues` (formatted at flush)."""
        self._pending.append(values)
        if len(self._pending) >= self.buffer_records:
            self.flush()

    def flush(self) -> None:
        """Format the pending records and hand them to the operating system."""
        if self._pending:
            pending, self._pending = self._pending, []
            rotates = bool(self.max_bytes and self.backup_count)
            chunk: list[str] = []
            for item in pending:
                line = _encode(step_record(item) if type(item) is tuple else item) + "\n"
                if rotates and self._size + len(line) > self.max_bytes:
                    self._handle.write("".join(chunk))
                    chunk = []
                    self._rotate()
                chunk.append(line)
                self._size += len(line)
            self._handle.write("".join(chunk))
        self._handle.flush()

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if not self._handle.closed:
            self.flush()
            self._handle.close()

    def _rotate(self) -> None:
        self._handle.close()
        for index in range(self.backup_count - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._handle = self.path.open("a", encoding="utf-8", newline="\n")
        self._size = 0


def _ends_torn(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def metrics_files(run_dir: str | Path, filename: str = DEFAULT_FILENAME) -> list[Path]:
    """The metrics files of a run, oldest first: ``name.N``, ..., ``name.1``, ``name``."""
    folder = Path(run_dir)
    rotated: list[tuple[int, Path]] = []
    for candidate in folder.glob(f"{filename}.*"):
        suffix = candidate.name[len(filename) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [path for _, path in sorted(rotated, reverse=True)]
    current = folder / filename
    if current.exists():
        files.append(current)
    return files


def _records(files: list[Path], strict: bool) -> Iterator[dict[str, Any]]:
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                        raise ValueError("not a record with an integer 'step'")
                except ValueError as exc:
                    message = f"{path}:{number}: not a metrics record ({exc})"
                    if strict:
                        raise MetricsFileError(message, path=path, line=number) from exc
                    logger.warning(
                        "%s; line skipped (a writer killed mid-line leaves one)", message
                    )
                    continue
                yield record


def read_records(
    run_dir: str | Path, *, filename: str = DEFAULT_FILENAME, strict: bool = False
) -> list[dict[str, Any]]:
    """The run's records as it finally went: abandoned branches dropped, ordered by step.

    Args:
        run_dir: The run's folder.
        filename: The metrics file's name (``MetricsSettings.filename``).
        strict: Raise on a line that is not a record instead of skipping it with a
            warning (a process killed while writing leaves a torn line).

    Raises:
        MetricsFileError: With ``strict``, a line that is not a record (file and line named).
    """
    kept: dict[tuple[int, str], dict[str, Any]] = {}
    for record in _records(metrics_files(run_dir, filename), strict):
        kind = str(record.get("kind", "step"))
        step = int(record["step"])
        if kind == "resume":
            for key in [key for key in kept if key[0] > step]:
                del kept[key]
            continue
        # A record of a step seen before replaces it (the resumed run redid the step).
        kept.pop((step, kind), None)
        kept[(step, kind)] = record
    order = {"step": 0, "eval": 1}
    return [kept[key] for key in sorted(kept, key=lambda k: (k[0], order.get(k[1], 2), k[1]))]


def read_metrics(
    run_dir: str | Path, *, filename: str = DEFAULT_FILENAME, strict: bool = False
) -> pl.DataFrame:
    """The run's metrics as a polars frame: one row per step and per evaluation.

    Columns: ``kind`` (``step`` or ``eval``), ``step``, ``epoch``, ``time_s`` and, for
    steps, ``loss``, ``grad_norm``, ``lr`` (``lr_1``, ... for further parameter groups),
    ``samples_per_s``, ``step_time_s``, ``host_rss_bytes``, ``device_allocated_bytes``,
    ``device_reserved_bytes`` (null where not read); for evaluations, one column per
    metric. Records of steps a restart or rollback redid appear once, as last written.

    Raises:
        MetricsFileError: With ``strict``, a line that is not a record.
    """
    import polars as pl

    rows = read_records(run_dir, filename=filename, strict=strict)
    if not rows:
        return pl.DataFrame(schema={"kind": pl.String, "step": pl.Int64})
    return pl.from_dicts(rows, infer_schema_length=None)


def export_metrics(
    run_dir: str | Path,
    path: str | Path,
    *,
    filename: str = DEFAULT_FILENAME,
    fmt: str | None = None,
) -> Path:
    """Write the run's metrics (as :func:`read_metrics` reads them) to CSV or Parquet.

    Args:
        run_dir: The run's folder.
        path: The file to write, atomically; its folder is created.
        filename: The metrics file's name in ``run_dir``.
        fmt: ``"csv"`` or ``"parquet"``; by default taken from ``path``'s suffix.

    Returns:
        ``path``.

    Raises:
        MonitorInputError: The format is neither CSV nor Parquet.
    """
    from as_optimize.exceptions import MonitorInputError

    target = Path(path)
    chosen = (fmt or target.suffix.lstrip(".")).lower()
    if chosen not in {"csv", "parquet"}:
        msg = (
            f"cannot export metrics to {target}: unknown format {chosen or '(no suffix)'!r}; "
            "use a .csv or .parquet file or fmt='csv'/'parquet'"
        )
        raise MonitorInputError(msg)
    frame = read_metrics(run_dir, filename=filename)

    def write(handle: IO[bytes]) -> None:
        if chosen == "csv":
            frame.write_csv(handle)
        else:
            frame.write_parquet(handle)

    with contextlib.suppress(FileExistsError):
        target.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(target, write)
