"""The versioned record of one benchmark run: :class:`BenchmarkResult` and its parts.

Every stored result carries ``schema_version``. A reader accepts the versions in
:data:`SUPPORTED_SCHEMA_VERSIONS` and refuses a newer one with an error that names the
file, rather than guessing at fields it does not know. When the schema changes, bump
:data:`SCHEMA_VERSION` and add an upgrade step to ``_UPGRADES`` so that old files still load.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from as_bench._version import __version__
from as_bench.exceptions import CorruptResultError
from as_bench.measurement import Measurement
from as_bench.stats import Stats

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "BenchmarkResult",
    "GitInfo",
    "OutputCheck",
    "parse_result",
]

SCHEMA_VERSION: Final = 2
"""The schema version this release writes."""

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
"""The schema versions this release reads."""


def _upgrade_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    # Version 2 only added optional fields (the run and machine a result belongs to,
    # re-measurement attempts, memory before loading, per-call device timing), whose
    # defaults describe a version-1 record truthfully: no run, one attempt, not measured.
    return {**record, "schema_version": 2}


# Upgrade steps from version N to N + 1, applied to the raw mapping before validation.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_1_to_2}

# Infinity and NaN do not survive JSON (pydantic writes them as null), so refuse them here.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
_Name = Annotated[str, Field(min_length=1)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputCheck(_Record):
    """How a backend's outputs compared with the reference backend's on the same inputs.

    Attributes:
        reference_backend: The backend the outputs were compared with (e.g. ``"torch"``).
        max_abs_error: Largest absolute difference over all outputs; ``None`` when it is
            not a finite number (the candidate produced NaN or infinity).
        max_rel_error: Largest relative difference over all outputs; ``None`` likewise.
        top1_agreement: Fraction of items whose arg-max class agrees; ``None`` when the
            outputs are not class scores.
        cosine_similarity: Mean cosine similarity of embedding rows; ``None`` otherwise.
        passed: Whether the differences were within ``tolerance``.
        tolerance: The absolute tolerance per element.
        rtol: The relative tolerance per element.
        failures: What failed, in words; empty when ``passed``.
    """

    reference_backend: str
    max_abs_error: FiniteFloat | None = Field(ge=0)
    max_rel_error: FiniteFloat | None = Field(ge=0)
    top1_agreement: FiniteFloat | None = Field(default=None, ge=0, le=1)
    cosine_similarity: FiniteFloat | None = Field(default=None, ge=-1.0001, le=1.0001)
    passed: bool
    tolerance: FiniteFloat = Field(ge=0)
    rtol: FiniteFloat = Field(default=0.0, ge=0)
    failures: list[str] = Field(default_factory=list)


class GitInfo(_Record):
    """The source tree a result was measured from.

    Attributes:
        commit: The full hash of ``HEAD``.
        dirty: Whether tracked files had changes that were not committed.
        branch: The branch checked out; ``None`` on a detached ``HEAD``.
    """

    commit: str = Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")
    dirty: bool
    branch: str | None = None


class BenchmarkResult(_Record):
    """One benchmark of one workload on one backend, device and batch size.

    Raw samples and their statistics live in :attr:`measurement`; the properties
    (:attr:`median_s`, :attr:`p95_s`, ...) read the latency series, which every
    measurement has, so that results from different devices compare like for like.

    Attributes:
        schema_version: The version of this schema the record follows.
        id: A unique id (uuid4 hex); the store names the result's file after it.
        benchmark: The benchmark's name, e.g. ``"digits-cnn/onnxruntime/cpu/bs32"``.
        workload: The workload's name, e.g. ``"digits-cnn"``.
        backend: The backend's name, e.g. ``"onnxruntime"``.
        device: The device string, e.g. ``"cpu"``, ``"cuda:0"``, ``"mps"``.
        batch_size: Items per call.
        measurement: Everything the engine measured: raw samples, statistics, warm-up,
            memory.
        throughput_items_per_s: Items per second at the median latency.
        accuracy: Quality metrics on the workload's evaluation data, name to value
            (e.g. ``{"accuracy": 0.97}``); ``None`` when not evaluated.
        output_check: Comparison of outputs with the reference backend.
        model_size_bytes: Size of the model as the backend stores it.
        backend_info: Facts about how the backend ran (providers, versions, files).
        hardware: The hardware probe, as ``HardwareInfo.model_dump(mode="json")``: a plain
            mapping so that results stay readable when the probe's model grows.
        git: The source tree, or ``None`` outside a git checkout.
        started_at: When the benchmark started (aware, UTC).
        finished_at: When it finished (aware, UTC).
        as_bench_version: The as-bench release that measured it.
        tags: Free labels for grouping (``{"suite": "default"}``).
        params: Parameters of the run (measurement options, workload settings).
        run: The run this result belongs to, numbered per machine in its store
            (``"0007"``); ``None`` for a result stored outside a run.
        machine: The machine id the run is numbered under (see
            :func:`as_bench.results.machine_id`); ``None`` outside a run.
    """

    schema_version: Literal[2] = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9A-Za-z_-]+$")
    benchmark: _Name
    workload: _Name
    backend: _Name
    device: _Name
    batch_size: int = Field(ge=1)
    measurement: Measurement
    throughput_items_per_s: FiniteFloat | None = Field(default=None, ge=0)
    accuracy: dict[str, FiniteFloat] | None = None
    output_check: OutputCheck | None = None
    model_size_bytes: int | None = Field(default=None, ge=0)
    backend_info: dict[str, Any] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    git: GitInfo | None = None
    started_at: AwareDatetime
    finished_at: AwareDatetime
    as_bench_version: str = __version__
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    run: str | None = Field(default=None, pattern=r"^[0-9]{4,}$")
    machine: str | None = Field(default=None, pattern=r"^[0-9A-Za-z._-]+$")

    @field_validator("started_at", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # One time zone in every record, so that sorting and frames never mix offsets.
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _finished_after_start(self) -> BenchmarkResult:
        if self.finished_at < self.started_at:
            raise ValueError(
                f"finished_at ({self.finished_at.isoformat()}) is before "
                f"started_at ({self.started_at.isoformat()})"
            )
        return self

    @property
    def stats(self) -> Stats:
        """Statistics of the latency samples."""
        return self.measurement.latency.stats

    @property
    def samples_s(self) -> list[float]:
        """The raw latency samples, seconds per call, in the order they were taken."""
        return self.measurement.latency.samples_s

    @property
    def median_s(self) -> float:
        """Median latency, seconds per call."""
        return self.stats.median

    @property
    def mean_s(self) -> float:
        """Mean latency, seconds per call."""
        return self.stats.mean

    @property
    def p95_s(self) -> float:
        """95th percentile of latency, seconds per call."""
        return self.stats.p95

    @property
    def p99_s(self) -> float:
        """99th percentile of latency, seconds per call."""
        return self.stats.p99

    @property
    def device_median_s(self) -> float | None:
        """Median device time, seconds per call; ``None`` without device timing."""
        series = self.measurement.device_time
        return None if series is None else series.stats.median

    @property
    def duration_s(self) -> float:
        """Wall time from start to finish of the benchmark, seconds."""
        return (self.finished_at - self.started_at).total_seconds()


def _format_validation_error(exc: ValidationError, where: str) -> str:
    shown = 8  # enough to see the pattern, short enough to read in one log line
    parts = []
    for error in exc.errors()[:shown]:
        loc = ".".join(str(part) for part in error["loc"]) or "<root>"
        parts.append(f"{where}{loc}: {error['msg']}")
    more = exc.error_count() - shown
    if more > 0:
        parts.append(f"... and {more} more")
    return "does not match the BenchmarkResult schema: " + "; ".join(parts)


def parse_result(data: object, path: Path, *, where: str = "") -> BenchmarkResult:
    """Validate one decoded JSON value as a :class:`BenchmarkResult`.

    Args:
        data: The decoded JSON value.
        path: The file it came from, named in errors.
        where: Prefix of key paths in errors, e.g. ``"[3]."`` for an item of a list.

    Raises:
        CorruptResultError: ``data`` is not a result object, has an unsupported
            ``schema_version``, or breaks the schema (the message lists the bad keys).
    """
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise CorruptResultError(path, f"{where or 'top level'}: expected an object, got {kind}")
    version = data.get("schema_version")
    supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
    if version is None:
        raise CorruptResultError(
            path, f"{where}schema_version is missing: not a BenchmarkResult record"
        )
    if not isinstance(version, int) or isinstance(version, bool):
        raise CorruptResultError(path, f"{where}schema_version {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise CorruptResultError(
            path,
            f"{where}schema_version {version} is newer than this as-bench {__version__} "
            f"reads (supported: {supported}); upgrade as-bench to read it",
        )
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise CorruptResultError(
            path, f"{where}schema_version {version} is not supported (supported: {supported})"
        )
    record = dict(data)
    while record["schema_version"] < SCHEMA_VERSION:
        record = _UPGRADES[record["schema_version"]](record)
    try:
        return BenchmarkResult.model_validate(record)
    except ValidationError as exc:
        raise CorruptResultError(path, _format_validation_error(exc, where)) from exc
