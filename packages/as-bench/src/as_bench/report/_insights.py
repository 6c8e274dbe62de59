"""Apple Silicon insights: which compute unit wins, threads, memory, power and heat.

Each insight is a sentence built from what the results recorded. Where a fact was not
recorded (a virtual Mac has no performance-core count, an old macOS no low-power flag)
the insight says so rather than guessing; on other machines there is one line that says
these insights are for Apple Silicon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from as_bench.probe import AppleSiliconInfo
from as_bench.report._hardware import (
    MISSING,
    apple_silicon_of,
    lookup,
    machine_label,
)
from as_bench.report._recommend import latest_per_benchmark
from as_bench.results import BenchmarkResult
from as_core.fmt import format_bytes, format_seconds

__all__ = ["MEMORY_WARN_FRACTION", "Insight", "apple_silicon_insights", "power_warnings"]

log = logging.getLogger(__name__)

MEMORY_WARN_FRACTION = 0.75
"""Above this share of ``recommended_max_memory`` a run risks paging or failing."""

Topic = Literal[
    "platform",
    "compute units",
    "threads",
    "memory",
    "power and heat",
    # Of function results (see as_bench.report._functions):
    "comparisons",
    "noise",
    "convergence",
]
Level = Literal["info", "warning", "unavailable"]

# The compute units compared, by the device strings that select them.
_UNITS: dict[str, str] = {"cpu": "CPU", "mps": "GPU (MPS)", "coreml-ane": "Neural Engine (Core ML)"}
_TORCH_BACKENDS = frozenset({"torch", "torch-compile"})


@dataclass(frozen=True)
class Insight:
    """One finding: about how the results used an Apple Silicon Mac, or about functions.

    Attributes:
        topic: What it is about.
        level: ``warning`` (act on it), ``info``, or ``unavailable`` (a fact was not
            recorded on the machine that produced the results).
        text: The finding, in words (plain text; renderers escape it).
    """

    topic: Topic
    level: Level
    text: str


def _compute_units(results: Sequence[BenchmarkResult]) -> list[Insight]:
    fastest: dict[tuple[str, int], dict[str, BenchmarkResult]] = {}
    for result in results:
        unit = _UNITS.get(result.device)
        if unit is None:
            continue
        slot = fastest.setdefault((result.workload, result.batch_size), {})
        kept = slot.get(unit)
        if kept is None or result.median_s < kept.median_s:
            slot[unit] = result
    insights = []
    names = list(_UNITS.values())
    for (workload, batch), units in sorted(fastest.items()):
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                if first in units and second in units:
                    insights.append(_ratio(workload, batch, units[first], units[second]))
    if not insights:
        insights.append(
            Insight(
                "compute units",
                "info",
                "no workload was measured on two of CPU, GPU (MPS) and Neural Engine (Core ML) "
                "at the same batch size, so they cannot be compared; run with "
                "`-d cpu -d mps` (and the coreml backend for the Neural Engine)",
            )
        )
    return insights


def _ratio(workload: str, batch: int, a: BenchmarkResult, b: BenchmarkResult) -> Insight:
    fast, slow = (a, b) if a.median_s <= b.median_s else (b, a)
    fast_unit, slow_unit = _UNITS[fast.device], _UNITS[slow.device]
    quoted = (
        f"{workload} at batch {batch}: {fast_unit} with {fast.backend} "
        f"{format_seconds(fast.median_s)} vs {slow_unit} with {slow.backend} "
        f"{format_seconds(slow.median_s)} median latency"
    )
    fast_stats, slow_stats = fast.stats, slow.stats
    if fast_stats.ci_high >= slow_stats.ci_low:
        return Insight("compute units", "info", f"{quoted}: statistically tied (CIs overlap)")
    factor = slow.median_s / fast.median_s
    times = f"{factor:.2f}x" if factor < 10 else f"{factor:.0f}x"
    return Insight("compute units", "info", f"{quoted}: the {fast_unit} is {times} faster")


def _threads_used(result: BenchmarkResult) -> tuple[str, int | None, str] | None:
    """(setting, count, how it was read) for CPU runs whose thread count matters."""
    if result.device != "cpu":
        return None
    if result.backend in _TORCH_BACKENDS:
        value = result.measurement.threads.get("torch_intra_op")
        return "torch intra-op threads", value if isinstance(value, int) else None, ""
    if result.backend == "onnxruntime":
        value = result.backend_info.get("intra_op_num_threads")
        if not isinstance(value, int) or isinstance(value, bool):
            return "ONNX Runtime intra-op threads", None, ""
        if value == 0:
            # ONNX Runtime's documented default: one thread per physical core.
            cores = lookup(result.hardware, "cpu", "physical_cores")
            count = cores if isinstance(cores, int) else None
            return "ONNX Runtime intra-op threads", count, " (its default: one per physical core)"
        return "ONNX Runtime intra-op threads", value, ""
    return None


def _threads(results: Sequence[BenchmarkResult]) -> list[Insight]:
    seen: dict[tuple[str, int | None, str, int | None, int | None, str], list[str]] = {}
    for result in results:
        used = _threads_used(result)
        apple = apple_silicon_of(result)
        if used is None or apple is None:
            continue
        setting, count, how = used
        key = (setting, count, how, apple.performance_cores, apple.efficiency_cores, apple.chip)
        seen.setdefault(key, []).append(result.benchmark)
    if not seen:
        return [
            Insight(
                "threads",
                "info",
                "no torch or ONNX Runtime result on the CPU: thread settings not checked",
            )
        ]
    return [_thread_insight(key, names) for key, names in sorted(seen.items(), key=str)]


def _thread_insight(
    key: tuple[str, int | None, str, int | None, int | None, str], benchmarks: list[str]
) -> Insight:
    setting, count, how, p_cores, e_cores, chip = key
    which = f" ({len(benchmarks)} result(s): {', '.join(benchmarks[:3])}"
    which += ", ...)" if len(benchmarks) > 3 else ")"
    if count is None:
        return Insight("threads", "unavailable", f"{setting}: {MISSING}{which}")
    if p_cores is None:
        return Insight(
            "threads",
            "unavailable",
            f"{setting} {count}{how}; the performance-core count of the {chip} is {MISSING}, "
            f"so the setting cannot be checked against it{which}",
        )
    cores = f"{p_cores} performance" + ("" if e_cores is None else f" and {e_cores} efficiency")
    if count > p_cores:
        return Insight(
            "threads",
            "warning",
            f"{setting} {count}{how} on the {chip} with {cores} cores: {count - p_cores} "
            f"thread(s) run on efficiency cores, and parallel ops wait for the slowest thread; "
            f"try `as-bench run --threads {p_cores}`{which}",
        )
    return Insight(
        "threads",
        "info",
        f"{setting} {count}{how}: within the {p_cores} performance cores of the {chip}{which}",
    )


def _memory(results: Sequence[BenchmarkResult], apple: AppleSiliconInfo) -> list[Insight]:
    insights = []
    for result in results:
        if result.device != "mps":
            continue
        memory = result.measurement.memory
        peaks = [
            v
            for v in (memory.device_peak_allocated_bytes, memory.device_peak_reserved_bytes)
            if v is not None
        ]
        if not peaks or memory.device_budget_bytes is None:
            missing = "peak MPS memory" if not peaks else "recommended_max_memory"
            insights.append(
                Insight("memory", "unavailable", f"{result.benchmark}: {missing} {MISSING}")
            )
            continue
        share = max(peaks) / memory.device_budget_bytes
        text = (
            f"{result.benchmark}: peak MPS memory {format_bytes(max(peaks))} is "
            f"{share * 100:.1f}% of the GPU's budget (recommended_max_memory "
            f"{format_bytes(memory.device_budget_bytes)})"
        )
        if share > MEMORY_WARN_FRACTION:
            text += (
                f"; above {MEMORY_WARN_FRACTION * 100:.0f}% macOS may page or fail "
                "allocations: use a smaller batch"
            )
            insights.append(Insight("memory", "warning", text))
        else:
            insights.append(Insight("memory", "info", text))
    if not insights:
        insights.append(
            Insight(
                "memory",
                "info",
                "no MPS result: the GPU's unified-memory budget (recommended_max_memory) "
                "is recorded only by MPS runs",
            )
        )
    rss = [r.measurement.memory.host_peak_rss_bytes for r in results]
    known = [v for v in rss if v is not None]
    if known and apple.unified_memory_bytes:
        share = max(known) / apple.unified_memory_bytes
        insights.append(
            Insight(
                "memory",
                "warning" if share > MEMORY_WARN_FRACTION else "info",
                f"largest process peak RSS {format_bytes(max(known))} is {share * 100:.1f}% "
                f"of the {format_bytes(apple.unified_memory_bytes)} of unified memory",
            )
        )
    elif apple.unified_memory_bytes is None:
        insights.append(Insight("memory", "unavailable", f"unified memory size: {MISSING}"))
    return insights


def _power(results: Sequence[BenchmarkResult]) -> list[Insight]:
    low, unknown_power, throttled, unknown_thermal = [], [], [], []
    for result in results:
        apple = apple_silicon_of(result)
        if apple is None:
            continue
        if apple.low_power_mode is None:
            unknown_power.append(result.benchmark)
        elif apple.low_power_mode:
            low.append(result.benchmark)
        if apple.thermal is None:
            unknown_thermal.append(result.benchmark)
        elif apple.thermal.state != "nominal":
            limit = apple.thermal.cpu_speed_limit
            speed = "" if limit is None else f", CPU speed limit {limit}%"
            throttled.append(f"{result.benchmark} ({apple.thermal.state}{speed})")
    insights = []
    if low:
        insights.append(
            Insight(
                "power and heat",
                "warning",
                f"{len(low)} result(s) were taken in low-power mode, which caps clock speeds: "
                f"they may be throttled; turn it off and plug in to measure ({_few(low)})",
            )
        )
    if throttled:
        insights.append(
            Insight(
                "power and heat",
                "warning",
                f"{len(throttled)} result(s) were taken under thermal pressure: they may be "
                f"throttled; let the Mac cool down and measure again ({_few(throttled)})",
            )
        )
    if unknown_power:
        insights.append(
            Insight(
                "power and heat",
                "unavailable",
                f"low-power mode: {MISSING} ({_few(unknown_power)})",
            )
        )
    if unknown_thermal:
        insights.append(
            Insight(
                "power and heat",
                "unavailable",
                f"thermal state: {MISSING} ({_few(unknown_thermal)})",
            )
        )
    if not insights:
        insights.append(
            Insight(
                "power and heat",
                "info",
                "every result was taken with low-power mode off and a nominal thermal state",
            )
        )
    return insights


def power_warnings(results: Sequence[BenchmarkResult]) -> list[Insight]:
    """The warnings about low-power mode and thermal pressure of Apple Silicon results.

    Results from other machines, and facts not recorded, give none: this is what a
    report of any kind of result needs to know (a throttled Mac measures slow).
    """
    return [insight for insight in _power(results) if insight.level == "warning"]


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _recorded_not_apple(result: BenchmarkResult) -> bool:
    return "apple_silicon" in result.hardware and result.hardware["apple_silicon"] is None


def apple_silicon_insights(results: Sequence[BenchmarkResult]) -> list[Insight]:
    """What the results say about running these workloads on Apple Silicon.

    Compares CPU, GPU (MPS) and the Neural Engine (Core ML) where a workload was
    measured on two of them at the same batch size; checks thread settings against the
    performance-core count; peak MPS memory against ``recommended_max_memory``; and warns
    about results taken in low-power mode or under thermal pressure. Repeated runs of a
    benchmark count once (the latest).

    Args:
        results: The results, from any machines.

    Returns:
        The insights; for results from other machines, one ``platform`` line that says
        these insights apply to Apple Silicon and where the results come from.
    """
    latest = latest_per_benchmark(results)
    apple_results = [r for r in latest if apple_silicon_of(r) is not None]
    # apple_silicon is null on other machines; absent (or unreadable) means unknown.
    others = [r for r in latest if apple_silicon_of(r) is None and _recorded_not_apple(r)]
    unknown = [r for r in latest if apple_silicon_of(r) is None and not _recorded_not_apple(r)]
    insights: list[Insight] = []
    if others:
        sources = "; ".join(sorted({machine_label(r) for r in others}))
        some = (
            "these results come" if len(others) == len(latest) else f"{len(others)} result(s) come"
        )
        insights.append(
            Insight(
                "platform",
                "info",
                f"the Apple Silicon insights apply to Apple Silicon Macs; {some} from {sources}",
            )
        )
    if unknown:
        names = _few([r.benchmark for r in unknown])
        insights.append(
            Insight(
                "platform",
                "unavailable",
                f"whether {len(unknown)} result(s) ran on Apple Silicon is {MISSING}: their "
                f"hardware record has no Apple Silicon entry ({names})",
            )
        )
    if not apple_results:
        return insights
    insights.extend(_compute_units(apple_results))
    insights.extend(_threads(apple_results))
    first = apple_silicon_of(apple_results[0])
    assert first is not None  # apple_results holds only results that have it
    insights.extend(_memory(apple_results, first))
    insights.extend(_power(apple_results))
    log.debug("%d Apple Silicon insights", len(insights))
    return insights
