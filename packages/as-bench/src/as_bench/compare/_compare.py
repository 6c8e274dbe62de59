"""Compare two sides benchmark by benchmark, and gate on regressions (see the package doc)."""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from as_bench.compare._environment import environment_differences
from as_bench.compare._stats import bootstrap_ratio_ci, mann_whitney_u, point_estimates
from as_bench.compare._thresholds import Threshold, ThresholdSet
from as_bench.exceptions import NothingToCompareError, ResultStoreError, ThresholdError
from as_bench.measurement import Measurement, TimingSeries, WarmupReport, device_timing_of
from as_bench.results import (
    BenchmarkResult,
    GitInfo,
    RunSummary,
    read_result_objects,
    read_results,
    select_run,
    summarize_runs,
)
from as_bench.results._export import format_for
from as_bench.stats import summarize
from as_core.fmt import format_seconds

__all__ = [
    "BUSY_QUANTILE",
    "CI_LEVEL",
    "NOISY_REL_IQR",
    "BenchmarkComparison",
    "Comparison",
    "Side",
    "compare_results",
    "inconclusive_reason",
    "load_side",
    "read_side",
]

logger = logging.getLogger(__name__)

CI_LEVEL = 0.95
"""Confidence level of the bootstrap interval of the ratio of medians."""

BOOTSTRAP_RESAMPLES = 2000
"""Bootstrap resamples per side."""

Change = Literal["regression", "improvement", "unchanged"]
Estimator = Literal["median", "lower decile"]

#: A side whose samples spread this much (IQR / median) was measured on a busy machine:
#: other processes took the CPU in the middle of some samples, and waiting for a core only
#: ever adds time, so the median and the upper quantiles then measure the machine as much
#: as the code. Such a comparison is judged on the lower decile instead (the busy-machine
#: rule in the package docstring), which stays put under load: on a 2-core runner with
#: four CPU-burning processes, the lower decile of a 1 ms function moved less than 1%
#: between runs while its median moved 14%.
NOISY_REL_IQR = 0.10

#: The quantile the busy-machine rule compares.
BUSY_QUANTILE = 0.1


class BenchmarkComparison(BaseModel):
    """One benchmark, baseline against candidate.

    Attributes:
        benchmark: The benchmark's name.
        timer: The label of the series compared: device time where both sides have it,
            else latency (the candidate's label).
        base_median_s: Median of the baseline's samples, seconds.
        new_median_s: Median of the candidate's samples, seconds.
        estimator: What :attr:`ratio` and its interval compare: the ``median``, or on a
            busy run (a side in :attr:`noisy`) the ``lower decile``.
        ratio: ``new / base`` of the estimator (above 1: slower).
        ratio_ci_low: Lower end of the 95% bootstrap interval of the ratio.
        ratio_ci_high: Upper end of that interval.
        p_value: Two-sided Mann-Whitney U p-value on the raw samples.
        significant: The change is not noise: ``p_value < alpha``; on a busy run, the
            interval of the ratio excludes 1.
        change: ``regression`` or ``improvement`` when the change is significant and
            ``|ratio - 1| >= min_effect``; else ``unchanged``.
        base_values: ``median``, ``mean``, ``p95`` and ``p10`` of the baseline's samples,
            seconds.
        new_values: The same for the candidate.
        thresholds: The thresholds that applied (expressions); empty when not gated.
        failed: Whether the gate failed this benchmark for one of them.
        reasons: Why it failed (or would have), one line per threshold exceeded.
        noisy: The sides measured on a busy machine (IQR at least ``NOISY_REL_IQR`` of
            the median), in words; empty when both are quiet.
        inconclusive: A threshold was exceeded, but on a busy run the evidence does not
            settle it (the interval of the lower decile's ratio reaches 1, or a tail
            threshold, which a busy machine inflates): reported, and a failure unless
            accepted.
        base_n: Baseline samples.
        new_n: Candidate samples.
    """

    model_config = ConfigDict(frozen=True)

    benchmark: str
    timer: str
    base_median_s: float
    new_median_s: float
    estimator: Estimator = "median"
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    p_value: float
    significant: bool
    change: Change
    base_values: dict[str, float]
    new_values: dict[str, float]
    thresholds: list[str] = Field(default_factory=list)
    failed: bool = False
    reasons: list[str] = Field(default_factory=list)
    noisy: list[str] = Field(default_factory=list)
    inconclusive: bool = False
    base_n: int
    new_n: int

    @property
    def busy(self) -> bool:
        """Whether the busy-machine rule judged this benchmark (a side is noisy)."""
        return bool(self.noisy)

    @property
    def base_estimate_s(self) -> float:
        """The baseline's value of :attr:`estimator`, seconds."""
        return self.base_values[_ESTIMATOR_KEYS[self.estimator]]

    @property
    def new_estimate_s(self) -> float:
        """The candidate's value of :attr:`estimator`, seconds."""
        return self.new_values[_ESTIMATOR_KEYS[self.estimator]]


_ESTIMATOR_KEYS: dict[str, str] = {"median": "median", "lower decile": "p10"}


class Comparison(BaseModel):
    """Two sides compared: per benchmark, across the suite, and their environments.

    Attributes:
        items: The benchmarks both sides have, by name.
        only_in_base: Benchmarks only the baseline has (reported, never failed).
        only_in_new: Benchmarks only the candidate has (reported, never failed).
        geomean_ratio: Geometric mean of the items' ratios; ``None`` without items.
        environment_warnings: What to read before the table: environment differences
            (see :func:`environment_differences`), and how the sides were read (a
            benchmark found several times, a timer that differs between the sides).
        alpha: Significance level of the test.
        min_effect: Smallest relative change of the median called a change.
    """

    model_config = ConfigDict(frozen=True)

    items: list[BenchmarkComparison]
    only_in_base: list[str] = Field(default_factory=list)
    only_in_new: list[str] = Field(default_factory=list)
    geomean_ratio: float | None = None
    environment_warnings: list[str] = Field(default_factory=list)
    alpha: float
    min_effect: float

    @property
    def failures(self) -> list[BenchmarkComparison]:
        """The benchmarks the gate failed."""
        return [item for item in self.items if item.failed]

    @property
    def inconclusive(self) -> list[BenchmarkComparison]:
        """The benchmarks that exceeded a threshold on a run too noisy to judge."""
        return [item for item in self.items if item.inconclusive]


def inconclusive_reason(item: BenchmarkComparison) -> str:
    """Why ``item`` is inconclusive: the change measured, and the noise against its limit.

    ``lower decile +6.1% (95% CI -0.4% … +12.0%) > 5%; a busy run (the new run's IQR is
    240% of its median, over 10%) and the evidence does not settle it: rerun it, on a
    quieter machine if you can``. The one wording of ``as-bench compare`` and the pytest
    plugin's gate.
    """
    return (
        f"{'; '.join(item.reasons)}; a busy run ({' and '.join(item.noisy)}, over "
        f"{NOISY_REL_IQR:.0%}) and the evidence does not settle it: rerun it, on a quieter "
        "machine if you can"
    )


def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _p_text(p: float) -> str:
    return "p<1e-300" if p <= 0.0 else f"p={p:.2g}"


def _ci_text(item: BenchmarkComparison) -> str:
    return (
        f"{CI_LEVEL:.0%} CI {_percent(item.ratio_ci_low - 1)} … {_percent(item.ratio_ci_high - 1)}"
    )


def _exceeds(threshold: Threshold, base: float, new: float) -> bool:
    if threshold.relative is not None:
        return base > 0 and new / base - 1.0 > threshold.relative
    assert threshold.absolute_s is not None
    return new - base > threshold.absolute_s


def _reason(item: BenchmarkComparison, threshold: Threshold) -> str:
    """Why ``item`` failed ``threshold``: the change, its evidence, the limit, the p-value.

    ``median +21.3% (95% CI +19.8% … +22.9%) > 5%, p=1e-09``, or for another metric
    ``p95 +30.1% > 10% (median +21.3%, 95% CI ...)``; absolute limits add the time.
    """
    metric = threshold.metric
    base, new = item.base_values[metric], item.new_values[metric]
    relative = _percent(new / base - 1.0) if base > 0 else "+inf%"
    p = _p_text(item.p_value)
    if metric == "median":
        if threshold.relative is not None:
            return f"median {relative} ({_ci_text(item)}) > {threshold.limit_text}, {p}"
        change = f"+{format_seconds(new - base)}"
        return f"median {change} ({relative}, {_ci_text(item)}) > {threshold.limit_text}, {p}"
    change = relative
    if threshold.absolute_s is not None:
        change = f"+{format_seconds(new - base)} ({relative})"
    evidence = f"({item.estimator} {_percent(item.ratio - 1)}, {_ci_text(item)})"
    return f"{metric} {change} > {threshold.limit_text} {evidence}, {p}"


def _busy_reason(item: BenchmarkComparison, threshold: Threshold) -> str:
    """Why a busy run's ``item`` exceeds ``threshold``, judged on the lower decile.

    ``lower decile +10.3% (95% CI +9.9% … +10.8%) > 5% (median:5% on a busy run)``.
    """
    base, new = item.base_values["p10"], item.new_values["p10"]
    change = _percent(new / base - 1.0) if base > 0 else "+inf%"
    if threshold.absolute_s is not None:
        change = f"+{format_seconds(new - base)} ({change})"
    return (
        f"lower decile {change} ({_ci_text(item)}) > {threshold.limit_text} "
        f"({threshold} on a busy run)"
    )


def _gate_busy(item: BenchmarkComparison, thresholds: Sequence[Threshold]) -> BenchmarkComparison:
    # The busy-machine rule (package docstring): every threshold is judged on the lower
    # decile, which waiting for a core does not move; it fails when the decile moved
    # beyond the limit and the interval of its ratio lies above 1, and is inconclusive
    # when it moved beyond the limit without that evidence. A tail threshold (p95) that
    # only the tail exceeded is inconclusive too: a busy machine's tail measures the
    # machine.
    failing: list[str] = []
    unsettled: list[str] = []
    evidence = item.ratio_ci_low > 1.0
    for threshold in thresholds:
        if _exceeds(threshold, item.base_values["p10"], item.new_values["p10"]):
            (failing if evidence else unsettled).append(_busy_reason(item, threshold))
        elif threshold.metric not in _ESTIMATOR_KEYS.values() and _exceeds(
            threshold, item.base_values[threshold.metric], item.new_values[threshold.metric]
        ):
            unsettled.append(
                f"{_reason(item, threshold)}, but only the tail moved and the tail of a busy "
                "run measures the machine"
            )
    inconclusive = not failing and bool(unsettled)
    return item.model_copy(
        update={
            "thresholds": [str(t) for t in thresholds],
            "failed": bool(failing),
            "inconclusive": inconclusive,
            "reasons": failing + unsettled,
        }
    )


def _gate(item: BenchmarkComparison, thresholds: Sequence[Threshold]) -> BenchmarkComparison:
    # The rule, in the package docstring: significant, the whole CI above 1, and beyond
    # the threshold by the metric's point estimate. Improvements fail none of these.
    if not thresholds:
        return item
    if item.busy:
        return _gate_busy(item, thresholds)
    reasons: list[str] = []
    if item.significant and item.ratio_ci_low > 1.0:
        for threshold in thresholds:
            metric = threshold.metric
            if _exceeds(threshold, item.base_values[metric], item.new_values[metric]):
                reasons.append(_reason(item, threshold))
    return item.model_copy(
        update={
            "thresholds": [str(t) for t in thresholds],
            "failed": bool(reasons),
            "inconclusive": False,
            "reasons": reasons,
        }
    )


def _series(base: BenchmarkResult, new: BenchmarkResult) -> tuple[TimingSeries, TimingSeries]:
    b, n = base.measurement, new.measurement
    if b.device_time is not None and n.device_time is not None and _same_device_timing(b, n):
        return b.device_time, n.device_time
    return b.latency, n.latency


def _same_device_timing(b: Measurement, n: Measurement) -> bool:
    # Back-to-back and per-call device time measure different things (23% apart on a
    # launch-bound call on an H200): never compare one with the other.
    return device_timing_of(b.device_time) == device_timing_of(n.device_time)


def _seed(name: str) -> int:
    # Stable across processes (unlike hash()), so a comparison is reproducible.
    return zlib.crc32(name.encode("utf-8"))


def _compare_one(
    name: str, base: BenchmarkResult, new: BenchmarkResult, alpha: float, min_effect: float
) -> BenchmarkComparison:
    base_series, new_series = _series(base, new)
    x = np.asarray(base_series.samples_s, dtype=np.float64)
    y = np.asarray(new_series.samples_s, dtype=np.float64)
    base_values, new_values = point_estimates(x), point_estimates(y)
    noisy = [
        f"the {side} run's IQR is {series.stats.relative_iqr:.0%} of its median"
        for side, series in (("base", base_series), ("new", new_series))
        if series.stats.relative_iqr >= NOISY_REL_IQR
    ]
    estimator: Estimator = "lower decile" if noisy else "median"
    key = _ESTIMATOR_KEYS[estimator]
    p_value = mann_whitney_u(x, y).p_value
    if base_values[key] > 0:
        ratio = new_values[key] / base_values[key]
        low, high = bootstrap_ratio_ci(
            x,
            y,
            level=CI_LEVEL,
            resamples=BOOTSTRAP_RESAMPLES,
            seed=_seed(name),
            quantile=BUSY_QUANTILE if noisy else 0.5,
        )
    else:  # a lower decile of 0 s (a timer too coarse): fall back to the median
        estimator, key = "median", "median"
        ratio = new_values["median"] / base_values["median"]
        low, high = bootstrap_ratio_ci(
            x, y, level=CI_LEVEL, resamples=BOOTSTRAP_RESAMPLES, seed=_seed(name)
        )
    # On a busy run the test on all samples mostly tests the load; the interval of the
    # lower decile's ratio is the evidence there.
    significant = (low > 1.0 or high < 1.0) if noisy else p_value < alpha
    change: Change = "unchanged"
    if significant and abs(ratio - 1.0) >= min_effect:
        change = "regression" if ratio > 1.0 else "improvement"
    return BenchmarkComparison(
        benchmark=name,
        timer=new_series.label,
        base_median_s=base_values["median"],
        new_median_s=new_values["median"],
        estimator=estimator,
        ratio=ratio,
        ratio_ci_low=low,
        ratio_ci_high=high,
        p_value=p_value,
        significant=significant,
        change=change,
        base_values=base_values,
        new_values=new_values,
        noisy=noisy,
        base_n=int(x.size),
        new_n=int(y.size),
    )


def _latest_by_name(
    results: Sequence[BenchmarkResult], side: str, warnings: list[str]
) -> dict[str, BenchmarkResult]:
    groups: dict[str, list[BenchmarkResult]] = {}
    for result in results:
        groups.setdefault(result.benchmark, []).append(result)
    latest: dict[str, BenchmarkResult] = {}
    repeated: list[str] = []
    for name, group in groups.items():
        latest[name] = max(group, key=lambda r: (r.finished_at, r.id))
        if len(group) > 1:
            repeated.append(f"{name} ({len(group)} results)")
    if repeated:
        warnings.append(
            f"{side} holds several results of {', '.join(sorted(repeated))}: "
            "the latest of each (by finished_at) is compared"
        )
    return latest


def _comparable(
    name: str, base: BenchmarkResult, new: BenchmarkResult, warnings: list[str]
) -> bool:
    base_series, new_series = _series(base, new)
    if not base_series.samples_s or not new_series.samples_s:
        warnings.append(f"{name}: a side has no raw samples; not compared")
        return False
    if not np.isfinite(base_series.samples_s).all() or not np.isfinite(new_series.samples_s).all():
        warnings.append(f"{name}: a side has samples that are NaN or infinite; not compared")
        return False
    if float(np.median(base_series.samples_s)) <= 0.0:
        warnings.append(f"{name}: the baseline's median is not positive; no ratio, not compared")
        return False
    b, n = base.measurement, new.measurement
    if (b.device_time is None) != (n.device_time is None):
        warnings.append(
            f"{name}: only one side has device time; latency is compared (both sides have it)"
        )
    elif b.device_time is not None and n.device_time is not None and not _same_device_timing(b, n):
        warnings.append(
            f"{name}: the sides took device time differently (back-to-back vs per call); "
            "latency is compared"
        )
    return True


def compare_results(
    base: Sequence[BenchmarkResult],
    new: Sequence[BenchmarkResult],
    *,
    thresholds: ThresholdSet | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.01,
) -> Comparison:
    """Compare the candidate's results with the baseline's, benchmark by benchmark.

    Benchmarks are matched by name; where a side holds several results of one name, the
    latest (``finished_at``) is used and a warning says so. For each match: the ratio
    of medians with its bootstrap CI, the Mann-Whitney U p-value on the raw samples, the
    change, and (with ``thresholds``) the gate's verdict. Across the suite: the
    geometric mean of the ratios.

    Args:
        base: The baseline's results.
        new: The candidate's results.
        thresholds: Regression thresholds; ``None`` (or an empty set) gates nothing.
        alpha: Significance level of the test, in (0, 1).
        min_effect: Smallest ``|ratio - 1|`` called a change (0.01 = 1%), at least 0.

    Returns:
        The :class:`Comparison`.

    Raises:
        ThresholdError: ``alpha`` or ``min_effect`` is out of range.
    """
    if not (0.0 < alpha < 1.0):
        error = ThresholdError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
        error.hint = "the usual significance level is 0.05"
        raise error
    if not (min_effect >= 0.0 and math.isfinite(min_effect)):
        error = ThresholdError(f"min_effect must be a number at least 0, got {min_effect!r}")
        error.hint = "0.01 calls a change of the median of 1% or more a change"
        raise error
    warnings = environment_differences(base, new)
    base_by = _latest_by_name(base, "base", warnings)
    new_by = _latest_by_name(new, "new", warnings)
    items: list[BenchmarkComparison] = []
    for name in sorted(base_by.keys() & new_by.keys()):
        if not _comparable(name, base_by[name], new_by[name], warnings):
            continue
        item = _compare_one(name, base_by[name], new_by[name], alpha, min_effect)
        gates = thresholds.for_benchmark(name) if thresholds is not None else []
        items.append(_gate(item, gates))
    geomean = None
    if items:
        geomean = float(np.exp(np.mean(np.log([item.ratio for item in items]))))
    return Comparison(
        items=items,
        only_in_base=sorted(base_by.keys() - new_by.keys()),
        only_in_new=sorted(new_by.keys() - base_by.keys()),
        geomean_ratio=geomean,
        environment_warnings=warnings,
        alpha=alpha,
        min_effect=min_effect,
    )


# Timers of rebuilt results, by device kind: a flat table does not record them.
_LATENCY_TIMERS: dict[str, Any] = {"cpu": "perf_counter", "mlx": "mlx_eval_clock"}
_DEVICE_TIMERS: dict[str, Any] = {"cuda": "cuda_events", "mps": "mps_events"}


def _rebuild(row: dict[str, Any], path: Path) -> BenchmarkResult:
    """A result from one row of a CSV or Parquet table: samples and the columns it has.

    The table keeps the raw samples, so the comparison itself is as good as from a
    store; what it lacks (warm-up, memory, hardware, thread settings) is left empty
    and a warning in the measurement says so.
    """
    kind = str(row["device"]).split(":")[0]
    samples = list(row["samples_s"] or [])
    if not samples:
        raise ResultStoreError(f"{path}: {row['benchmark']} has no samples to compare")
    latency = TimingSeries(
        label="latency (from a flat table)",
        timer=_LATENCY_TIMERS.get(kind, "sync_clock"),
        samples_s=samples,
        stats=summarize(samples),
    )
    device_samples = list(row.get("device_samples_s") or [])
    device_time = None
    if device_samples:
        device_time = TimingSeries(
            label="device time (from a flat table)",
            timer=_DEVICE_TIMERS.get(kind, "cuda_events"),
            samples_s=device_samples,
            stats=summarize(device_samples),
        )
    started: datetime = row["started_at"] or datetime.now(UTC)
    finished: datetime = row["finished_at"] or started
    note = (
        f"rebuilt from {path.name}, a flat table: samples and summary columns only; "
        "warm-up, memory, hardware and thread settings were not kept"
    )
    git = None
    if row.get("git_commit"):
        git = GitInfo(commit=row["git_commit"], dirty=bool(row.get("git_dirty")))
    measurement = Measurement(
        device=str(row["device"]),
        latency=latency,
        device_time=device_time,
        cold_start_s=float(row.get("cold_start_s") or 0.0),
        warmup=WarmupReport(iterations=0, seconds=0.0, stable=True),
        inner_loops=int(row.get("inner_loops") or 1),
        converged=bool(row.get("converged")),
        stop_reason=note,
        total_seconds=max(0.0, (finished - started).total_seconds()),
        warnings=[note],
    )
    return BenchmarkResult(
        id=str(row["id"]),
        benchmark=str(row["benchmark"]),
        workload=str(row["workload"]),
        backend=str(row["backend"]),
        device=str(row["device"]),
        batch_size=int(row["batch_size"]),
        measurement=measurement,
        throughput_items_per_s=row.get("throughput_items_per_s"),
        model_size_bytes=row.get("model_size_bytes"),
        git=git,
        started_at=started,
        finished_at=finished,
        as_bench_version=str(row.get("as_bench_version") or "unknown"),
    )


@dataclass(frozen=True)
class Side:
    """One side of a comparison as read: its results and which run they are.

    Attributes:
        path: Where it was read from (without an ``@RUN`` suffix).
        results: The results compared.
        run: The run they are, when the place holds numbered runs; else ``None``.
        runs: How many numbered runs the place holds.
    """

    path: Path
    results: list[BenchmarkResult]
    run: RunSummary | None = None
    runs: int = 0

    def describe(self) -> str:
        """Which run this is, for people; the path alone outside runs.

        ``base run 0007 (linux-x86_64-cpython3.11, 2026-12-04 20:01 UTC) of 3 runs``.
        """
        if self.run is None:
            return str(self.path)
        when = f"{self.run.started_at:%Y-%m-%d %H:%M} UTC"
        text = f"{self.path} run {self.run.run} ({self.run.machine}, {when})"
        return f"{text} of {self.runs} runs" if self.runs > 1 else text


def _split_run(path: Path | str) -> tuple[Path, str | None]:
    text = str(path)
    if "@" in text and not Path(text).exists():
        place, _, run = text.rpartition("@")
        if place and run:
            return Path(place), run
    return Path(text), None


def read_side(path: Path | str, *, machine: str | None = None) -> Side:
    """Read one side of a comparison (see :func:`load_side`), and say which run it is.

    ``path`` may end in ``@RUN`` (``results@0003``, ``results@latest``) to pick a run of a
    store or JSON export that holds several; without it, the latest run is taken (of
    ``machine`` when it has any). Results stored before runs were numbered have no run:
    a place holding only those is read whole, as before.

    Raises:
        As :func:`load_side`; and ResultStoreError for a run that is not there.
    """
    place, run = _split_run(path)
    results = _load_all(place)
    picked, summary = select_run(results, run, machine=machine, where=str(place))
    return Side(place, picked, summary, len(summarize_runs(results)))


def load_side(path: Path | str) -> list[BenchmarkResult]:
    """Read one side of a comparison: a store folder, a result or JSON export, CSV, Parquet.

    A place holding several numbered runs gives its latest run; ``PATH@RUN`` names
    another (see :func:`read_side`).

    A store folder with a corrupt file is an error naming every corrupt file (a gate
    must not quietly compare fewer benchmarks). CSV and Parquet exports keep the raw
    samples, so they compare as well as the rest; their results are rebuilt without
    hardware and thread records, which the environment check then reports as unknown.

    Args:
        path: Where the results are.

    Returns:
        The results, at least one.

    Raises:
        CorruptResultError: A file is malformed (the message names it and says where).
        NothingToCompareError: ``path`` does not exist, or holds no results (a
            :class:`ResultStoreError` too).
        ResultStoreError: ``path`` has an unknown suffix, or a store folder has corrupt
            files, or ``@RUN`` names a run that is not there.
    """
    return read_side(path).results


def _load_all(path: Path) -> list[BenchmarkResult]:
    if not path.exists():
        raise NothingToCompareError(f"no results at {path}: no such file or folder")
    if path.is_dir():
        results = read_result_objects(path, on_error="collect")
    elif format_for(path) == "json":
        results = read_result_objects(path)
    else:
        frame = read_results(path)
        results = [_rebuild(row, path) for row in frame.iter_rows(named=True)]
    if not results:
        kind = "folder" if path.is_dir() else "file"
        raise NothingToCompareError(f"no results in {path} (an empty {kind}): nothing to compare")
    logger.debug("read %d result(s) from %s", len(results), path)
    return results
