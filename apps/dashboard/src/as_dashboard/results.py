"""Benchmark results for the pages: open stores and exports, filter, compare, draw.

Everything here is a thin layer over as-bench's public API (the store and its readers,
:mod:`as_bench.compare`, :mod:`as_bench.plots`, :mod:`as_bench.report`): the dashboard
reads, compares and draws exactly as ``as-bench compare``, ``plot`` and ``report`` do, and
only turns failures into messages a page can show.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from as_bench.compare import Comparison, ThresholdSet, compare_results, parse_threshold, read_side
from as_bench.exceptions import AsBenchError
from as_bench.results import (
    BenchmarkResult,
    ResultStore,
    RunSummary,
    read_result_objects,
    select_run,
    summarize_runs,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "TABLE_COLUMNS",
    "GateVerdict",
    "OpenedSource",
    "RunChoice",
    "SourceError",
    "compare_runs",
    "draw_comparison",
    "draw_figures",
    "filter_frame",
    "gate_verdict",
    "item_verdict",
    "merge_results",
    "open_source",
    "results_table",
    "run_choices",
    "thresholds_of",
]

#: The columns of the results table, in order (as-bench's frame has more).
TABLE_COLUMNS = (
    "benchmark",
    "workload",
    "backend",
    "device",
    "batch_size",
    "median_s",
    "ci_low_s",
    "ci_high_s",
    "p95_s",
    "iqr_s",
    "n_samples",
    "converged",
    "throughput_items_per_s",
    "output_check_passed",
    "model_size_bytes",
    "started_at",
    "id",
)


class SourceError(ValueError):
    """A place that could not be opened as results; the message says what and where."""


@dataclass(frozen=True)
class OpenedSource:
    """One result store or export, as opened.

    Attributes:
        path: Where it was read from.
        kind: ``store``, ``json``, ``csv`` or ``parquet``.
        results: The results that loaded.
        problems: What could not be read (a corrupt file, named, and why), one line each;
            the rest still loaded.
    """

    path: Path
    kind: str
    results: list[BenchmarkResult]
    problems: list[str] = field(default_factory=list)


def open_source(path: Path | str) -> OpenedSource:
    """Open a result store folder or an export (``.json``, ``.csv``, ``.parquet``).

    A store's corrupt files are listed in :attr:`OpenedSource.problems` while the others
    load. A CSV or Parquet export holds a flat table: as ``as-bench compare`` does, its
    latest run is rebuilt into results (samples and summary columns only).

    Raises:
        SourceError: Nothing there, a folder with no result files (not a store), a file
            that is not a results export, or no result could be read.
    """
    place = Path(str(path).strip()).expanduser()
    if not str(path).strip():
        raise SourceError("no path given: type a result store folder or an export file")
    if not place.exists():
        raise SourceError(f"{place}: no such file or folder")
    try:
        if place.is_dir():
            return _open_store(place)
        suffix = place.suffix.lower()
        if suffix == ".json":
            return OpenedSource(place, "json", read_result_objects(place))
        if suffix in (".csv", ".parquet"):
            side = read_side(place)
            return OpenedSource(place, suffix[1:], side.results)
    except (AsBenchError, OSError, ValueError) as exc:
        raise SourceError(f"{place}: {exc}") from exc
    raise SourceError(
        f"{place}: not an as-bench result store or export "
        "(expected a store folder, or a .json, .csv or .parquet export)"
    )


def _open_store(place: Path) -> OpenedSource:
    store = ResultStore(place, create=False)
    results, errors = store.load_report()
    problems = [str(error) for error in errors]
    if not results and not errors:
        raise SourceError(
            f"{place}: not an as-bench result store: the folder holds no result files "
            "(an as-bench store holds one JSON file per result, as `as-bench run -o` writes)"
        )
    if not results:
        raise SourceError(
            f"{place}: none of its {len(errors)} result file(s) could be read: "
            + "; ".join(problems[:3])
            + (" ..." if len(problems) > 3 else "")
        )
    return OpenedSource(place, "store", results, problems)


def merge_results(sources: Iterable[OpenedSource]) -> list[BenchmarkResult]:
    """The results of every source, each result once (by id), oldest first."""
    seen: dict[str, BenchmarkResult] = {}
    for source in sources:
        for result in source.results:
            seen.setdefault(result.id, result)
    return sorted(seen.values(), key=lambda r: (r.started_at, r.id))


def results_table(results: Sequence[BenchmarkResult]) -> pl.DataFrame:
    """as-bench's results frame, with :data:`TABLE_COLUMNS` plus ``run`` and ``machine``."""
    import polars as pl

    from as_bench.results import results_to_frame

    frame = results_to_frame(results).select(TABLE_COLUMNS)
    return frame.with_columns(
        pl.Series("run", [r.run for r in results], dtype=pl.String),
        pl.Series("machine", [r.machine for r in results], dtype=pl.String),
    )


def filter_frame(frame: pl.DataFrame, choices: Mapping[str, Sequence[object]]) -> pl.DataFrame:
    """Keep the rows whose value in each named column is one of the chosen ones.

    A column with no choice (an empty sequence) is not filtered.
    """
    import polars as pl

    for column, wanted in choices.items():
        if wanted:
            frame = frame.filter(pl.col(column).is_in(list(wanted)))
    return frame


@dataclass(frozen=True)
class RunChoice:
    """One run of an opened source, as offered for a comparison.

    Attributes:
        source: Where the run is.
        run: Its summary; ``None`` for results stored before runs were numbered (the
            source is then one side, whole).
    """

    source: Path
    run: RunSummary | None

    @property
    def label(self) -> str:
        """``results run 0002 (linux-x86_64-cpython3.11, 2026-12-05 01:02, 12 results)``."""
        if self.run is None:
            return f"{self.source} (all results)"
        when = f"{self.run.started_at:%Y-%m-%d %H:%M:%S}"
        return (
            f"{self.source} run {self.run.run} ({self.run.machine}, {when}, "
            f"{self.run.results} results)"
        )


def run_choices(sources: Iterable[OpenedSource]) -> list[RunChoice]:
    """Every run of every source, newest last; a source without runs is one choice."""
    choices: list[RunChoice] = []
    for source in sources:
        runs = summarize_runs(source.results)
        if not runs:
            choices.append(RunChoice(source.path, None))
        choices.extend(RunChoice(source.path, run) for run in runs)
    return choices


def _results_of(choice: RunChoice, sources: Mapping[Path, OpenedSource]) -> list[BenchmarkResult]:
    results = sources[choice.source].results
    if choice.run is None:
        return list(results)
    picked, _ = select_run(
        results, choice.run.run, machine=choice.run.machine, where=str(choice.source)
    )
    return picked


def thresholds_of(text: str) -> ThresholdSet | None:
    """The gate's thresholds from ``median:5%, p95:10%`` (commas or spaces); ``None`` if empty.

    Raises:
        as_bench.exceptions.ThresholdError: An expression ``as-bench compare --fail-on``
            would refuse.
    """
    parts = [part for part in text.replace(",", " ").split() if part]
    return ThresholdSet(default=[parse_threshold(part) for part in parts]) if parts else None


def compare_runs(
    base: RunChoice,
    new: RunChoice,
    sources: Mapping[Path, OpenedSource],
    *,
    thresholds: ThresholdSet | None,
    alpha: float = 0.05,
    min_effect: float = 0.01,
) -> Comparison:
    """Compare two runs with as-bench's comparison and gate (``as-bench compare``'s rule)."""
    return compare_results(
        _results_of(base, sources),
        _results_of(new, sources),
        thresholds=thresholds,
        alpha=alpha,
        min_effect=min_effect,
    )


ItemVerdict = Literal["FAIL", "INCONCLUSIVE", "pass", "-"]
GateOutcome = Literal["failed", "inconclusive", "passed", "not gated", "nothing compared"]


@dataclass(frozen=True)
class GateVerdict:
    """The gate's verdict on a comparison, as ``as-bench compare`` states it.

    Attributes:
        outcome: ``failed`` (its exit status 1), ``inconclusive`` (3), ``passed`` (0),
            ``not gated`` (no thresholds: 0) or ``nothing compared`` (4).
        lines: One line per failed or inconclusive benchmark, with the reasons.
    """

    outcome: GateOutcome
    lines: list[str]


def item_verdict(comparison: Comparison, benchmark: str) -> ItemVerdict:
    """The gate column of ``as-bench compare``'s table for one benchmark."""
    for item in comparison.items:
        if item.benchmark == benchmark:
            if not item.thresholds:
                return "-"
            if item.failed:
                return "FAIL"
            return "INCONCLUSIVE" if item.inconclusive else "pass"
    raise KeyError(benchmark)


def gate_verdict(comparison: Comparison, *, gated: bool) -> GateVerdict:
    """The verdict of the gate over ``comparison`` (an inconclusive one is never passed)."""
    from as_bench.compare import inconclusive_reason

    if not comparison.items:
        return GateVerdict("nothing compared", [])
    if not gated:
        return GateVerdict("not gated", [])
    lines = [f"REGRESSION {i.benchmark}: {'; '.join(i.reasons)}" for i in comparison.failures]
    lines += [
        f"INCONCLUSIVE {i.benchmark}: {inconclusive_reason(i)}" for i in comparison.inconclusive
    ]
    if comparison.failures:
        return GateVerdict("failed", lines)
    if comparison.inconclusive:
        return GateVerdict("inconclusive", lines)
    return GateVerdict("passed", lines)


def _figures_key(results: Sequence[BenchmarkResult], comparison: Comparison | None) -> str:
    digest = hashlib.sha256()
    for result in results:
        digest.update(result.id.encode())
        digest.update(result.started_at.isoformat().encode())
    if comparison is not None:
        digest.update(comparison.model_dump_json().encode())
    return digest.hexdigest()[:20]


def draw_figures(
    results: Sequence[BenchmarkResult], root: Path, *, comparison: Comparison | None = None
) -> dict[str, Path]:
    """as-bench's figures of ``results`` as PNG files (``as-bench plot``'s set).

    Drawn once per set of results (and comparison) into a folder of ``root`` named after
    them, and read from there afterwards.

    Returns:
        Figure name (``distributions``, ``throughput``, ``memory``, ``pareto``,
        ``comparison``) to its PNG file; figures without data are absent.
    """
    from as_bench.plots import render_all

    folder = root / _figures_key(results, comparison)
    index = folder / "figures.json"
    if index.is_file():
        names: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))
        found = {name: folder / file for name, file in names.items()}
        if all(path.is_file() for path in found.values()):
            return found
    rows = comparison.items if comparison is not None else None
    written = render_all(results, folder, formats=("png",), comparison=rows)
    drawn = {name: paths[0] for name, paths in written.items() if paths}
    index.write_text(json.dumps({name: path.name for name, path in drawn.items()}), "utf-8")
    return drawn


def draw_comparison(comparison: Comparison, root: Path) -> Path:
    """as-bench's comparison figure (``as-bench plot --baseline``'s) as a PNG file.

    Drawn once per comparison into ``root`` and read from there afterwards.
    """
    from as_bench.plots import plot_comparison

    path = root / f"comparison-{_figures_key([], comparison)}.png"
    if not path.is_file():
        plot_comparison(comparison.items, path)
    return path
