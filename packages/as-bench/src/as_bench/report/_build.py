"""``build_report``: results in, ``report.md``, ``report.html`` and ``images/`` out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from as_bench.exceptions import ResultStoreError
from as_bench.report._data import Figure, build_data, figure_title
from as_bench.report._html import render_html
from as_bench.report._markdown import render_markdown
from as_bench.report._recommend import latest_per_benchmark
from as_bench.results import BenchmarkResult
from as_core.fs import write_text_atomic

if TYPE_CHECKING:
    from as_bench.compare import Comparison

__all__ = ["IMAGES_DIR", "ReportFiles", "build_report"]

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
"""The figures' folder, inside the report's folder (the Markdown links into it)."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote.

    Attributes:
        markdown: ``report.md``.
        html: ``report.html``, self-contained.
        images: The PNG figures the Markdown links to (and the HTML embeds).
    """

    markdown: Path
    html: Path
    images: list[Path]


def _draw(
    results: Sequence[BenchmarkResult], out_dir: Path, comparison: Comparison | None
) -> list[Figure]:
    from as_bench.plots import render_all

    rows = None if comparison is None or not comparison.items else comparison.items
    written = render_all(results, out_dir / IMAGES_DIR, formats=("png",), comparison=rows)
    figures = []
    for name, paths in written.items():
        for path in paths:
            if path.suffix.lower() != ".png":
                continue
            relative = PurePosixPath(path.resolve().relative_to(out_dir.resolve()).as_posix())
            figures.append(Figure(name=name, title=figure_title(name), path=relative))
    return figures


def build_report(
    results: Sequence[BenchmarkResult],
    out_dir: Path,
    *,
    baseline: Sequence[BenchmarkResult] | None = None,
    title: str | None = None,
) -> ReportFiles:
    """Write a Markdown and a self-contained HTML report of ``results`` into ``out_dir``.

    Both say the same: the environment, noise warnings, a table per workload, the
    comparison with ``baseline`` when given, a recommendation per workload and batch size
    with its evidence, Apple Silicon insights, and the figures of
    :func:`as_bench.plots.render_all` (PNG files under ``out_dir/images``, linked from
    the Markdown by relative path and embedded in the HTML as data URIs).

    The report adapts to what was measured: function results (backend ``"python"``: the
    pytest plugin's and :meth:`~as_bench.results.ResultStore.add`'s) get no backend
    recommendation, Apple Silicon insights or throughput-against-batch figure, but
    findings of their own (:func:`~as_bench.report.function_insights`): which function
    of a group is faster, noise, convergence. Model results are reported as before.

    Args:
        results: The results to report (at least one).
        out_dir: The folder to write into; created if missing.
        baseline: Results to compare against (:func:`as_bench.compare.compare_results`,
            baseline first).
        title: The report's title; by default it names the workloads.

    Returns:
        The files written.

    Raises:
        ValueError: ``results`` is empty.
        ResultStoreError: ``out_dir`` cannot be written.
    """
    if not results:
        raise ValueError("a report needs at least one result")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultStoreError(f"cannot create the report folder {out_dir}: {exc}") from exc
    latest = latest_per_benchmark(results)
    comparison = None
    if baseline is not None:
        from as_bench.compare import compare_results

        comparison = compare_results(latest_per_benchmark(baseline), latest)
    figures = _draw(latest, out_dir, comparison)
    data = build_data(results, comparison=comparison, figures=figures, title=title)
    markdown = out_dir / "report.md"
    page = out_dir / "report.html"
    try:
        # A reader (a browser refreshing, CI archiving) never sees half a report.
        write_text_atomic(markdown, render_markdown(data))
        write_text_atomic(page, render_html(data, out_dir))
    except OSError as exc:
        if isinstance(exc, ResultStoreError):
            raise
        raise ResultStoreError(f"cannot write the report into {out_dir}: {exc}") from exc
    log.info("report written to %s and %s (%d figures)", markdown, page, len(figures))
    return ReportFiles(
        markdown=markdown, html=page, images=[out_dir / Path(f.path) for f in figures]
    )
