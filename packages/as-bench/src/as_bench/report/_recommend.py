"""The recommendation: the fastest configuration of each workload that is also right.

Per workload and batch size (batch size is usually fixed by the application: 1 for
interactive use, large for offline work, so one winner across batch sizes would answer
a question nobody asked), the candidates are the results whose output check passed (or
that had none) and whose accuracy is within :data:`ACCURACY_TOLERANCE` of the workload's
best. Among them the lowest median **latency** wins: latency (a synchronised call) is
what a caller waits for and every device has it, whereas device time exists only on
asynchronous devices and leaves out the host's share, so it would favour GPUs unfairly.
When the winner's and the runner-up's confidence intervals of the median overlap, the
two are called statistically tied.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from as_bench.report._hardware import machine_label
from as_bench.results import BenchmarkResult
from as_core.fmt import format_rate, format_seconds

__all__ = [
    "ACCURACY_TOLERANCE",
    "METHOD",
    "Candidate",
    "Recommendation",
    "accuracy_metric",
    "check_text",
    "latest_per_benchmark",
    "recommend",
]

log = logging.getLogger(__name__)

ACCURACY_TOLERANCE = 0.005
"""How far below the best accuracy a result may score and still be recommended (0.5 pp)."""

METHOD = (
    "One recommendation per workload and batch size: the batch size is usually fixed by "
    "the application (1 for interactive use, large for offline work), so each is answered "
    "on its own, and the batch size with the highest throughput is marked. Candidates are "
    "the results whose outputs matched the reference backend (or were not checked) and "
    f"whose accuracy is within {ACCURACY_TOLERANCE * 100:g} percentage points of the "
    "workload's best. Among them the lowest median latency wins: latency (a synchronised "
    "call) is what a caller waits for and every device records it, whereas device time "
    "leaves out the host's share. When the winner's and the runner-up's 95% confidence "
    "intervals of the median overlap, the two are statistically tied and either is a "
    "sound choice."
)
"""How the recommendation is made, in words, for the report."""


def accuracy_metric(result: BenchmarkResult) -> tuple[str, float] | None:
    """The quality figure a result is judged by: ``accuracy`` if present, else the first.

    Every built-in metric (accuracy, cosine similarity) is higher-is-better.
    """
    if not result.accuracy:
        return None
    if "accuracy" in result.accuracy:
        return "accuracy", result.accuracy["accuracy"]
    name = sorted(result.accuracy)[0]
    return name, result.accuracy[name]


def check_text(result: BenchmarkResult) -> str:
    """The output check in words: ``"passed vs torch (max abs error 9.5e-07)"``."""
    check = result.output_check
    if check is None:
        return "not checked"
    error = "NaN/inf" if check.max_abs_error is None else f"{check.max_abs_error:.1e}"
    if check.passed:
        return f"passed vs {check.reference_backend} (max abs error {error})"
    why = "; ".join(check.failures) or f"max abs error {error} > {check.tolerance:g}"
    return f"FAILED vs {check.reference_backend}: {why}"


def latest_per_benchmark(results: Sequence[BenchmarkResult]) -> list[BenchmarkResult]:
    """The most recent result of each benchmark (a store may hold several runs of one).

    Pooling repeated runs would mix machine states and commits; the report, like the
    figures, describes the latest. Order: workload, backend, device, batch size.
    """
    latest: dict[tuple[str, str, str, str, int], BenchmarkResult] = {}
    for result in results:
        key = (result.benchmark, result.workload, result.backend, result.device, result.batch_size)
        kept = latest.get(key)
        if kept is None or result.finished_at > kept.finished_at:
            latest[key] = result
    return sorted(
        latest.values(), key=lambda r: (r.workload, r.backend, r.device, r.batch_size, r.benchmark)
    )


@dataclass(frozen=True)
class Candidate:
    """One result, as the recommendation quotes it.

    Attributes:
        benchmark: The benchmark's name.
        backend: The backend.
        device: The device.
        batch_size: Items per call.
        median_s: Median latency, seconds per call.
        ci_low_s: Lower end of the median's confidence interval.
        ci_high_s: Upper end.
        ci_level: The interval's confidence level (0.95).
        throughput: Items per second at the median, if recorded.
        metric: Name of the quality figure, ``None`` when not evaluated.
        accuracy: Its value.
        check: The output check in words.
        converged: Whether sampling reached its CI target.
    """

    benchmark: str
    backend: str
    device: str
    batch_size: int
    median_s: float
    ci_low_s: float
    ci_high_s: float
    ci_level: float
    throughput: float | None
    metric: str | None
    accuracy: float | None
    check: str
    converged: bool

    @classmethod
    def of(cls, result: BenchmarkResult) -> Candidate:
        """Summarise ``result``."""
        stats = result.measurement.latency.stats
        metric = accuracy_metric(result)
        return cls(
            benchmark=result.benchmark,
            backend=result.backend,
            device=result.device,
            batch_size=result.batch_size,
            median_s=stats.median,
            ci_low_s=stats.ci_low,
            ci_high_s=stats.ci_high,
            ci_level=stats.ci_level,
            throughput=result.throughput_items_per_s,
            metric=metric[0] if metric else None,
            accuracy=metric[1] if metric else None,
            check=check_text(result),
            converged=result.measurement.converged,
        )

    @property
    def label(self) -> str:
        """``"onnxruntime on cpu"``."""
        return f"{self.backend} on {self.device}"

    def latency_text(self) -> str:
        """``"10.9 µs (95% CI 10.5 µs to 11.3 µs)"``."""
        level = f"{self.ci_level * 100:g}%"
        return (
            f"{format_seconds(self.median_s)} ({level} CI {format_seconds(self.ci_low_s)} "
            f"to {format_seconds(self.ci_high_s)})"
        )

    def overlaps(self, other: Candidate) -> bool:
        """Whether the two confidence intervals of the median overlap."""
        return self.ci_low_s <= other.ci_high_s and other.ci_low_s <= self.ci_high_s


@dataclass(frozen=True)
class Recommendation:
    """The recommended configuration of one workload at one batch size.

    Attributes:
        workload: The workload.
        batch_size: The batch size.
        machine: The machine, when the results come from several (else ``None``).
        choice: The recommended configuration; ``None`` when no result qualified.
        runner_up: The next fastest qualified configuration, if any.
        tied: Whether the choice and the runner-up's CIs overlap.
        best_accuracy: The best quality figure of the workload (the yardstick).
        excluded: ``(benchmark, why)`` for each result that could not be recommended.
        best_throughput: Whether this batch size gives the workload's highest throughput
            among qualified results.
    """

    workload: str
    batch_size: int
    machine: str | None
    choice: Candidate | None
    runner_up: Candidate | None
    tied: bool
    best_accuracy: float | None
    excluded: list[tuple[str, str]] = field(default_factory=list)
    best_throughput: bool = False

    @property
    def summary(self) -> str:
        """One sentence: what to use, or why nothing can be recommended."""
        if self.choice is None:
            return "nothing to recommend: no result passed the output and accuracy checks"
        text = f"use {self.choice.label}: median latency {self.choice.latency_text()}"
        if self.runner_up is None:
            return text + " (the only configuration that qualified)"
        if self.tied:
            return (
                f"{text}, statistically tied with {self.runner_up.label} "
                f"({self.runner_up.latency_text()}): their confidence intervals overlap"
            )
        speedup = self.runner_up.median_s / self.choice.median_s
        return (
            f"{text}, {_times(speedup)} faster than the runner-up {self.runner_up.label} "
            f"({self.runner_up.latency_text()})"
        )

    @property
    def evidence(self) -> list[str]:
        """The facts behind the choice, one line each."""
        if self.choice is None:
            return [f"{name}: {why}" for name, why in self.excluded]
        choice = self.choice
        lines = []
        if choice.throughput is not None:
            lines.append(
                f"throughput {format_rate(choice.throughput)} at batch {choice.batch_size}"
            )
        if choice.accuracy is not None and choice.metric is not None:
            best = (
                ""
                if self.best_accuracy is None
                else f" (best of the workload {self.best_accuracy:.4g})"
            )
            lines.append(f"{choice.metric} {choice.accuracy:.4g}{best}")
        else:
            lines.append("accuracy not evaluated")
        lines.append(f"output check {choice.check}")
        if not choice.converged:
            lines.append("sampling did not converge: the interval is wider than targeted")
        lines.extend(f"not recommended: {name}: {why}" for name, why in self.excluded)
        return lines


def _times(factor: float) -> str:
    """``1.234`` as ``"1.23x"``, ``1159.4`` as ``"1159x"``: no false precision."""
    return f"{factor:.2f}x" if factor < 10 else f"{factor:.0f}x"


def _best_accuracy(results: Sequence[BenchmarkResult]) -> float | None:
    scores = [
        metric[1]
        for r in results
        if (r.output_check is None or r.output_check.passed)
        and (metric := accuracy_metric(r)) is not None
        and math.isfinite(metric[1])
    ]
    return max(scores) if scores else None


def _why_excluded(result: BenchmarkResult, best: float | None) -> str | None:
    if result.output_check is not None and not result.output_check.passed:
        return f"output check {check_text(result)}"
    metric = accuracy_metric(result)
    if metric is not None and best is not None and metric[1] < best - ACCURACY_TOLERANCE:
        return (
            f"{metric[0]} {metric[1]:.4g} is more than {ACCURACY_TOLERANCE * 100:g} points "
            f"below the best ({best:.4g})"
        )
    return None


def recommend(results: Sequence[BenchmarkResult]) -> list[Recommendation]:
    """Recommend the fastest correct configuration per workload and batch size.

    Repeated runs of a benchmark count once (the latest). Results from different
    machines are never compared with each other: each machine gets its own
    recommendations.

    Args:
        results: The results to choose from.

    Returns:
        One recommendation per (machine, workload, batch size), sorted by them.
    """
    latest = latest_per_benchmark(results)
    machines = {machine_label(r) for r in latest}
    several = len(machines) > 1
    by_workload: dict[tuple[str, str], list[BenchmarkResult]] = {}
    for result in latest:
        by_workload.setdefault((machine_label(result), result.workload), []).append(result)
    recommendations: list[Recommendation] = []
    for (machine, workload), group in sorted(by_workload.items()):
        best = _best_accuracy(group)
        per_batch: list[Recommendation] = []
        for batch in sorted({r.batch_size for r in group}):
            qualified: list[Candidate] = []
            excluded: list[tuple[str, str]] = []
            for result in (r for r in group if r.batch_size == batch):
                why = _why_excluded(result, best)
                if why is None:
                    qualified.append(Candidate.of(result))
                else:
                    excluded.append((result.benchmark, why))
            qualified.sort(key=lambda c: (c.median_s, c.benchmark))
            choice = qualified[0] if qualified else None
            runner_up = qualified[1] if len(qualified) > 1 else None
            tied = choice is not None and runner_up is not None and choice.overlaps(runner_up)
            per_batch.append(
                Recommendation(
                    workload=workload,
                    batch_size=batch,
                    machine=machine if several else None,
                    choice=choice,
                    runner_up=runner_up,
                    tied=tied,
                    best_accuracy=best,
                    excluded=excluded,
                )
            )
        recommendations.extend(_mark_best_throughput(per_batch))
    log.debug("recommendations for %d workload/batch groups", len(recommendations))
    return recommendations


def _mark_best_throughput(group: list[Recommendation]) -> list[Recommendation]:
    rated = [r for r in group if r.choice is not None and r.choice.throughput is not None]
    if not rated:
        return group
    top = max(rated, key=lambda r: (r.choice.throughput if r.choice else None) or 0.0)
    return [replace(r, best_throughput=True) if r is top else r for r in group]
