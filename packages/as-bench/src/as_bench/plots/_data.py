"""Selecting and labelling the results a figure shows (no matplotlib here)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from as_bench.results import BenchmarkResult
from as_bench.results._measured import is_function_result

__all__ = ["by_workload", "function_name", "latest_per_benchmark", "result_label", "sort_key"]

logger = logging.getLogger(__name__)

_Key = tuple[str, str, str, str, int]


def _identity(result: BenchmarkResult) -> _Key:
    return (result.benchmark, result.workload, result.backend, result.device, result.batch_size)


def sort_key(result: BenchmarkResult) -> tuple[str, str, str, int]:
    """The order results appear in within a panel: backend, device, batch size."""
    return (result.workload, result.backend, result.device, result.batch_size)


def latest_per_benchmark(results: Sequence[BenchmarkResult]) -> list[BenchmarkResult]:
    """Keep the most recent result of each benchmark, in panel order.

    A store that collected several runs holds the same benchmark more than once; pooling
    their samples would mix machines states and commits, so a figure shows the latest.
    """
    latest: dict[_Key, BenchmarkResult] = {}
    for result in results:
        key = _identity(result)
        kept = latest.get(key)
        if kept is None or result.finished_at > kept.finished_at:
            latest[key] = result
    dropped = len(results) - len(latest)
    if dropped:
        logger.info("plotting the latest of repeated benchmarks; %d older left out", dropped)
    return sorted(latest.values(), key=sort_key)


def by_workload(results: Sequence[BenchmarkResult]) -> dict[str, list[BenchmarkResult]]:
    """The latest results grouped by workload (one panel each), workloads sorted by name."""
    groups: dict[str, list[BenchmarkResult]] = {}
    for result in latest_per_benchmark(results):
        groups.setdefault(result.workload, []).append(result)
    return dict(sorted(groups.items()))


def function_name(result: BenchmarkResult) -> str:
    """A function result's short name: its benchmark less the test file and the group.

    ``tests/test_x.py::test_sort[heapq]`` is ``test_sort[heapq]``; ``words/join`` in the
    workload ``words`` is ``join``.
    """
    name = result.benchmark.rsplit("::", 1)[-1]
    prefix = result.workload + "/"
    return name[len(prefix) :] if name.startswith(prefix) and name != prefix else name


def result_label(result: BenchmarkResult, *, batch: bool = True) -> str:
    """``"onnxruntime/cpu bs32"``: what a tick or an annotation calls a result.

    A function result is called by its name (:func:`function_name`), since every function
    has the backend ``python``.
    """
    if is_function_result(result):
        label = f"{function_name(result)}/{result.device}"
        return f"{label} bs{result.batch_size}" if batch and result.batch_size != 1 else label
    label = f"{result.backend}/{result.device}"
    return f"{label} bs{result.batch_size}" if batch else label
