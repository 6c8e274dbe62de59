"""Every figure that has data, in every format asked for: what ``as-bench plot`` writes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from as_bench.plots._comparison import ComparisonRow, build_comparison
from as_bench.plots._distributions import build_distributions
from as_bench.plots._files import check_formats, draw
from as_bench.plots._memory import build_memory, has_memory
from as_bench.plots._pareto import build_pareto, has_accuracy
from as_bench.plots._throughput import build_throughput, has_throughput_curve
from as_bench.results import BenchmarkResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "render_all"]

logger = logging.getLogger(__name__)

FIGURES = ("distributions", "throughput", "memory", "pareto", "comparison")
"""The figures :func:`render_all` can write, in order; each is ``<name>.<format>``."""


def _builders(
    results: Sequence[BenchmarkResult], comparison: Sequence[ComparisonRow] | None
) -> dict[str, Callable[[], Figure] | str]:
    # Each figure's builder, or why it is skipped.
    skipped_no_results = "no results"
    builders: dict[str, Callable[[], Figure] | str] = {
        "distributions": (lambda: build_distributions(results)) if results else skipped_no_results,
        "throughput": (lambda: build_throughput(results))
        if has_throughput_curve(results)
        else "no backend and device was measured at two batch sizes or more"
        if results
        else skipped_no_results,
        "memory": (lambda: build_memory(results))
        if has_memory(results)
        else "no result recorded peak memory",
        "pareto": (lambda: build_pareto(results))
        if has_accuracy(results)
        else "no result recorded accuracy",
        "comparison": (lambda: build_comparison(comparison))
        if comparison
        else "no comparison given",
    }
    return builders


def render_all(
    results: Sequence[BenchmarkResult],
    out_dir: Path,
    *,
    formats: Sequence[str] = ("png",),
    comparison: Sequence[ComparisonRow] | None = None,
) -> dict[str, list[Path]]:
    """Write every figure that has data, in every format, into ``out_dir``.

    The figures are ``distributions``, ``throughput`` (when a backend and device of a
    workload was measured at two batch sizes or more: not for functions measured at one
    batch size), ``memory`` (when any result recorded memory), ``pareto`` (when any
    result recorded accuracy) and ``comparison`` (when ``comparison`` has rows); each file
    is ``<name>.<format>``, written atomically.

    Args:
        results: The results to plot.
        out_dir: The folder for the figures; created when missing.
        formats: Any of ``"png"``, ``"svg"``, ``"pdf"``.
        comparison: Rows of a comparison with a baseline, e.g.
            ``compare_results(base, new).items``.

    Returns:
        Figure name to the files written, in the order of ``formats``; figures without
        data are absent.

    Raises:
        ValueError: A format is not a figure format, or none is given.
        ResultStoreError: A file could not be written (the message names it).
    """
    fmts = check_formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, build in _builders(results, comparison).items():
        if isinstance(build, str):
            logger.info("skipping the %s figure: %s", name, build)
            continue
        written[name] = draw(build, [out_dir / f"{name}.{fmt}" for fmt in fmts])
    return written
