"""A result of a function measured with :func:`as_bench.measure`, not of a model suite.

The one place that turns a bare :class:`~as_bench.measurement.Measurement` into a
:class:`BenchmarkResult`: :meth:`ResultStore.add` (a measurement stored by hand) and the
pytest plugin (a measurement a test took) both build theirs here, so the two kinds of
function result look alike and the report can tell them from model results
(:func:`is_function_result`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from as_bench.measurement import Measurement
from as_bench.results._schema import BenchmarkResult, GitInfo

__all__ = ["FUNCTION_BACKEND", "FUNCTION_SOURCES", "function_result", "is_function_result"]

FUNCTION_BACKEND: Final = "python"
"""The backend of a function result: the function ran as Python called it, no runtime."""

FUNCTION_SOURCES: Final = frozenset({"pytest", "store.add"})
"""The ``source`` tags of function results: the pytest plugin and :meth:`ResultStore.add`."""


def is_function_result(result: BenchmarkResult) -> bool:
    """Whether ``result`` times a function of one's own rather than a model on a backend."""
    return result.backend == FUNCTION_BACKEND or result.tags.get("source") in FUNCTION_SOURCES


def _times(
    measurement: Measurement, started_at: datetime | None, finished_at: datetime | None
) -> tuple[datetime, datetime]:
    # The measurement knows how long it took, not when: anchor the span on whichever end
    # is given, or on now (the measurement just ended, as store.add is called after it).
    took = timedelta(seconds=measurement.total_seconds)
    if started_at is None and finished_at is None:
        finished_at = datetime.now(UTC)
    if started_at is None:
        assert finished_at is not None
        started_at = finished_at - took
    if finished_at is None:
        finished_at = started_at + took
    return started_at, finished_at


def function_result(
    measurement: Measurement,
    *,
    benchmark: str,
    workload: str,
    batch_size: int,
    hardware: Mapping[str, Any],
    git: GitInfo | None,
    source: str,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    run: str | None = None,
    machine: str | None = None,
) -> BenchmarkResult:
    """The result of one measured function: backend ``"python"``, tagged with its source.

    Args:
        measurement: What :func:`as_bench.measure` returned.
        benchmark: The result's name.
        workload: The group it is reported and compared in.
        batch_size: Items one call processes; throughput is ``batch_size`` per median
            latency.
        hardware: The probe, as ``HardwareInfo.model_dump(mode="json")``.
        git: The source tree, or ``None``.
        source: Who measured it (``"pytest"``, ``"store.add"``): the ``source`` tag.
        started_at: When the measurement started; ``finished_at`` less the measurement's
            ``total_seconds`` when ``None``.
        finished_at: When it finished; ``started_at`` plus ``total_seconds`` when
            ``None``, now when neither is given.
        tags: More labels; a ``source`` among them replaces ``source``.
        params: Parameters to record.
        run: The run it belongs to, if any.
        machine: The machine id the run is numbered under, if any.

    Raises:
        pydantic.ValidationError: A field is not valid (a bad ``run``, ``finished_at``
            before ``started_at``, ...).
    """
    start, end = _times(measurement, started_at, finished_at)
    median = measurement.latency.stats.median
    return BenchmarkResult(
        benchmark=benchmark,
        workload=workload,
        backend=FUNCTION_BACKEND,
        device=measurement.device,
        batch_size=batch_size,
        measurement=measurement,
        throughput_items_per_s=batch_size / median if median > 0 else None,
        hardware=dict(hardware),
        git=git,
        started_at=start,
        finished_at=end,
        tags={"source": source, **(tags or {})},
        params=dict(params or {}),
        run=run,
        machine=machine,
    )
