"""What a report says about functions measured with :func:`as_bench.measure`.

A function result (the pytest plugin's, or one stored with :meth:`ResultStore.add`) times
code of one's own, not a model on a backend: there is no backend to recommend and no
compute unit to choose. What the measurements do say is which function of a group is
faster (a group is a workload: a test's measurements, the parametrisations of one test,
or the functions given one workload), how noisy each measurement was, and whether it
reached its confidence-interval target. Each finding is an :class:`Insight`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from as_bench.report._hardware import apple_silicon_of, machine_label
from as_bench.report._insights import Insight, power_warnings
from as_bench.report._recommend import latest_per_benchmark
from as_bench.results import BenchmarkResult
from as_core.fmt import format_seconds

__all__ = ["function_insights"]

log = logging.getLogger(__name__)


def _few(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _times(factor: float) -> str:
    return f"{factor:.2f}x" if factor < 10 else f"{factor:.0f}x"


def _comparisons(results: Sequence[BenchmarkResult]) -> list[Insight]:
    several_machines = len({machine_label(r) for r in results}) > 1
    groups: dict[tuple[str, str, str, int], list[BenchmarkResult]] = {}
    for result in results:
        key = (machine_label(result), result.workload, result.device, result.batch_size)
        groups.setdefault(key, []).append(result)
    insights = []
    for (machine, workload, device, batch), group in sorted(groups.items()):
        if len(group) < 2:
            continue
        group.sort(key=lambda r: (r.median_s, r.benchmark))
        fast = group[0]
        where = f" on {device}" + (f" at batch {batch}" if batch != 1 else "")
        where += f" ({machine})" if several_machines else ""
        for slow in group[1:]:
            quoted = (
                f"{workload}{where}: {fast.benchmark} {format_seconds(fast.median_s)} vs "
                f"{slow.benchmark} {format_seconds(slow.median_s)} median latency"
            )
            if fast.stats.ci_high >= slow.stats.ci_low:
                text = f"{quoted}: statistically tied (their 95% CIs of the median overlap)"
            else:
                factor = slow.median_s / fast.median_s if fast.median_s > 0 else float("inf")
                text = f"{quoted}: {fast.benchmark} is {_times(factor)} faster"
            insights.append(Insight("comparisons", "info", text))
    if not insights:
        insights.append(
            Insight(
                "comparisons",
                "info",
                "no two functions share a workload, device and batch size, so none is compared "
                "with another: give them one workload (ResultStore.add(m, name=..., "
                "workload=...)) or measure them in one test or one parametrised test (the "
                "pytest plugin groups by test function)",
            )
        )
    return insights


def _noise(results: Sequence[BenchmarkResult]) -> list[Insight]:
    # The comparison's own limit: above it, a comparison treats the side as noisy.
    from as_bench.compare._compare import NOISY_REL_IQR

    spread = sorted(
        ((r.stats.relative_iqr, r.benchmark) for r in results), key=lambda x: (-x[0], x[1])
    )
    noisy = [f"{name} {rel * 100:.0f}%" for rel, name in spread if rel >= NOISY_REL_IQR]
    insights = []
    if noisy:
        insights.append(
            Insight(
                "noise",
                "warning",
                f"{len(noisy)} measurement(s) spread widely, an IQR of at least "
                f"{NOISY_REL_IQR:.0%} of the median ({_few(noisy)}): the machine was busy or "
                "the time per call varies; rerun on a quiet machine before comparing them",
            )
        )
    else:
        rel, name = spread[0]
        insights.append(
            Insight(
                "noise",
                "info",
                f"every measurement's IQR is below {NOISY_REL_IQR:.0%} of its median "
                f"(the widest: {name}, {rel * 100:.1f}%)",
            )
        )
    warned = [r.benchmark for r in results if r.measurement.warnings]
    if warned:
        insights.append(
            Insight(
                "noise",
                "warning",
                f"{len(warned)} measurement(s) recorded warnings about the machine or the "
                f"timing ({_few(warned)}): see Noise warnings",
            )
        )
    apple = [r for r in results if apple_silicon_of(r) is not None]
    insights.extend(Insight("noise", "warning", insight.text) for insight in power_warnings(apple))
    return insights


def _convergence(results: Sequence[BenchmarkResult]) -> list[Insight]:
    missed = [r for r in results if not r.measurement.converged]
    insights = []
    if missed:
        named = [f"{r.benchmark} ({r.measurement.stop_reason})" for r in missed]
        insights.append(
            Insight(
                "convergence",
                "warning",
                f"{len(missed)} of {len(results)} measurement(s) stopped before their "
                f"confidence interval reached its target ({_few(named)}): their intervals are "
                "wider than asked; give them more time (MeasureOptions(max_time_s=...))",
            )
        )
    else:
        insights.append(
            Insight(
                "convergence",
                "info",
                f"all {len(results)} measurement(s) reached their confidence-interval target",
            )
        )
    pooled = [r for r in results if r.measurement.attempts > 1]
    if pooled:
        insights.append(
            Insight(
                "convergence",
                "info",
                f"{len(pooled)} measurement(s) were measured again after a noisy first attempt "
                f"and pool the samples of every attempt ({_few([r.benchmark for r in pooled])})",
            )
        )
    return insights


def function_insights(results: Sequence[BenchmarkResult]) -> list[Insight]:
    """What function results say: comparisons within a group, noise, convergence.

    Functions that share a workload, device and batch size (and machine) are compared
    with the fastest of them: statistically tied when the 95% confidence intervals of
    the median overlap, else how many times faster. Noise: measurements whose IQR is
    at least the comparison's noise limit of their median, measurements with warnings,
    and Apple Silicon low-power mode or thermal pressure. Convergence: measurements that
    stopped before their CI target, and re-measured ones. Repeated runs of a benchmark
    count once (the latest).

    Args:
        results: Function results (see :func:`as_bench.results._measured.is_function_result`).

    Returns:
        The insights, by topic; empty when ``results`` is.
    """
    latest = latest_per_benchmark(results)
    if not latest:
        return []
    insights = [*_comparisons(latest), *_noise(latest), *_convergence(latest)]
    log.debug("%d function insights", len(insights))
    return insights
