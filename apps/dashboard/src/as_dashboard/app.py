"""The dashboard's pages (Streamlit): what each shows, and how bad input becomes a message.

:func:`main` is the script Streamlit runs on every interaction (``_entry.py`` calls it).
The logic lives in :mod:`as_dashboard.results`, :mod:`as_dashboard.live` and
:mod:`as_dashboard.training`; this module only lays out widgets, tables and charts. A
failure in one part of a page (a store that cannot be read, a server that does not
answer) is shown there as a message and the rest of the page, and the app, keep working.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

import as_logging
from as_bench.compare import Comparison
from as_bench.exceptions import AsBenchError
from as_bench.results import BenchmarkResult
from as_core.fmt import format_rate, format_seconds
from as_dashboard.live import LiveHistory, MetricsUnavailableError, read_metrics
from as_dashboard.results import (
    OpenedSource,
    RunChoice,
    SourceError,
    compare_runs,
    draw_comparison,
    draw_figures,
    filter_frame,
    gate_verdict,
    item_verdict,
    merge_results,
    open_source,
    results_table,
    run_choices,
    thresholds_of,
)
from as_dashboard.settings import DashboardSettings, load_dashboard_settings
from as_dashboard.studies import (
    StudyError,
    list_studies,
    load_study_view,
    optuna_available,
    storage_of,
)
from as_dashboard.training import TrainingRunError, find_runs, load_run

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PAGES", "SETTINGS_ARG", "main"]

logger = logging.getLogger(__name__)

#: The option after ``--`` through which the ``dashboard`` command hands its settings over.
SETTINGS_ARG = "--settings-json"

PAGES = ("Benchmarks", "Compare runs", "Live server", "Training", "Studies")
"""The pages, in the sidebar's order."""

_FILTERS = ("workload", "backend", "device", "batch_size")
_logging_configured = False


def _settings() -> DashboardSettings:
    """The settings handed over by ``dashboard``, else read from the environment."""
    argv = sys.argv[1:]
    if SETTINGS_ARG in argv:
        index = argv.index(SETTINGS_ARG)
        if index + 1 < len(argv):
            return DashboardSettings.model_validate_json(argv[index + 1])
    return load_dashboard_settings()


def _configure_logging(settings: DashboardSettings) -> None:
    global _logging_configured
    if not _logging_configured:
        as_logging.configure(settings.log_level, log_dir=settings.log_dir)
        _logging_configured = True


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _signature(path: Path) -> tuple[int, int]:
    """What changes when results are added to a place: its entries and latest change."""
    try:
        if path.is_dir():
            entries = [e.stat().st_mtime_ns for e in os.scandir(path) if e.is_file()]
            return len(entries), max(entries, default=path.stat().st_mtime_ns)
        return 1, path.stat().st_mtime_ns
    except OSError:
        return 0, 0


@st.cache_resource(show_spinner=False, max_entries=64)
def _open_cached(path: str, signature: tuple[int, int]) -> OpenedSource | str:
    del signature  # part of the cache key only: a changed store is read again
    try:
        return open_source(path)
    except SourceError as exc:
        return str(exc)


def _open_sources(paths: Sequence[str]) -> list[OpenedSource]:
    sources: list[OpenedSource] = []
    for path in paths:
        opened = _open_cached(path, _signature(Path(path).expanduser()))
        if isinstance(opened, str):
            st.error(opened)
            continue
        if opened.problems:
            st.warning(
                f"{opened.path}: {len(opened.problems)} result file(s) could not be read "
                "and are left out:\n\n" + "\n".join(f"- {p}" for p in opened.problems)
            )
        sources.append(opened)
    return sources


def _figures_root(settings: DashboardSettings) -> Path:
    root = settings.figures_dir or Path(tempfile.gettempdir()) / "as-dashboard-figures"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _guarded(part: str, body: Callable[[], None]) -> None:
    """Run one part of a page; an unexpected failure becomes a message there."""
    try:
        body()
    except Exception as exc:  # the page must survive anything one part meets
        logger.exception("%s failed", part)
        st.error(f"{part} failed: {type(exc).__name__}: {exc}")


# -- Benchmarks ---------------------------------------------------------------------------


def _benchmarks_page(sources: list[OpenedSource], settings: DashboardSettings) -> None:
    st.header("Benchmark results")
    results = merge_results(sources)
    if not results:
        st.info(
            "Open an as-bench result store (the folder `as-bench run -o` writes) or an "
            "export (.json, .csv, .parquet) in the sidebar."
        )
        return
    table = results_table(results)
    columns = st.columns(len(_FILTERS))
    choices: dict[str, list[Any]] = {}
    for column, name in zip(columns, _FILTERS, strict=True):
        options = sorted(table[name].unique().to_list())
        choices[name] = column.multiselect(name.replace("_", " "), options, key=f"filter_{name}")
    shown = filter_frame(table, choices)
    st.caption(f"{shown.height} of {table.height} results from {len(sources)} place(s)")
    st.dataframe(_readable(shown), hide_index=True, key="results_table")
    ids = set(shown["id"].to_list())
    picked = [r for r in results if r.id in ids]
    _guarded("The recommendation", lambda: _recommendation(picked))
    _guarded("The figures", lambda: _figures(picked, settings))


def _readable(frame: pl.DataFrame) -> pl.DataFrame:
    """Times as people read them (``33.8 µs``) beside the batch size; seconds stay at the end."""
    import polars as pl

    times = {"median": "median_s", "CI low": "ci_low_s", "CI high": "ci_high_s", "p95": "p95_s"}
    readable = [
        pl.col(column).map_elements(format_seconds, return_dtype=pl.String).alias(name)
        for name, column in times.items()
    ]
    first = ["benchmark", "workload", "backend", "device", "batch_size"]
    rest = [c for c in frame.columns if c not in first]
    return frame.select(*first, *readable, *rest)


def _recommendation(results: list[BenchmarkResult]) -> None:
    from as_bench.report import recommend

    st.subheader("Recommendation")
    recommendations = [r for r in recommend(results) if r.choice is not None or r.excluded]
    models = [r for r in recommendations if r.choice is None or r.choice.backend != "python"]
    if not models:
        st.caption("No model results among these: nothing to recommend.")
        return
    for rec in models:
        where = f" on {rec.machine}" if rec.machine else ""
        st.markdown(f"**{rec.workload}**, batch {rec.batch_size}{where}: {rec.summary}")
        with st.expander("why", expanded=False):
            st.markdown("\n".join(f"- {line}" for line in rec.evidence))


def _figures(results: list[BenchmarkResult], settings: DashboardSettings) -> None:
    st.subheader("Figures")
    if not results:
        st.caption("No result is selected.")
        return
    with st.spinner("drawing the figures"):
        figures = draw_figures(results, _figures_root(settings))
    for name, path in figures.items():
        st.image(str(path), caption=name, width="stretch")


# -- Compare ------------------------------------------------------------------------------


def _compare_page(sources: list[OpenedSource], settings: DashboardSettings) -> None:
    st.header("Compare two runs")
    choices = run_choices(sources)
    if len(choices) < 2:
        st.info(
            "A comparison needs two runs: open two stores or exports in the sidebar, or "
            "one store that holds several runs."
        )
        return
    labels = [choice.label for choice in choices]
    left, right = st.columns(2)
    base_label = left.selectbox("base", labels, index=len(labels) - 2, key="compare_base")
    new_label = right.selectbox("new", labels, index=len(labels) - 1, key="compare_new")
    gate, alpha_column = st.columns([3, 1])
    expressions = gate.text_input(
        "fail on (as `as-bench compare --fail-on`; empty: no gate)",
        value="median:5%",
        key="compare_fail_on",
    )
    alpha = alpha_column.number_input(
        "alpha", min_value=1e-6, max_value=0.5, value=0.05, format="%g", key="compare_alpha"
    )
    base = choices[labels.index(base_label)]
    new = choices[labels.index(new_label)]
    try:
        thresholds = thresholds_of(expressions)
    except AsBenchError as exc:
        st.error(f"Bad threshold: {exc}")
        return
    by_path = {source.path: source for source in sources}
    try:
        comparison = compare_runs(base, new, by_path, thresholds=thresholds, alpha=float(alpha))
    except (AsBenchError, ValueError) as exc:
        st.error(f"Cannot compare these runs: {exc}")
        return
    _comparison(comparison, base, new, gated=thresholds is not None and not thresholds.empty)
    _guarded("The comparison figure", lambda: _comparison_figure(comparison, settings))


def _verdict_message(comparison: Comparison, gated: bool) -> None:
    verdict = gate_verdict(comparison, gated=gated)
    failures, unsettled = len(comparison.failures), len(comparison.inconclusive)
    if verdict.outcome == "failed":
        st.error(f"FAILED: {failures} benchmark(s) regressed significantly beyond their thresholds")
    elif verdict.outcome == "inconclusive":
        st.warning(
            f"INCONCLUSIVE: {unsettled} benchmark(s) regressed beyond their thresholds on "
            "runs too noisy to judge: rerun on a quiet machine"
        )
    elif verdict.outcome == "passed":
        st.success(
            f"passed: no significant regression beyond the thresholds (alpha {comparison.alpha:g})"
        )
    elif verdict.outcome == "not gated":
        st.info("No thresholds: nothing gated.")
    else:
        st.error("Nothing compared: no benchmark is in both runs.")
    if verdict.lines:
        st.code("\n".join(verdict.lines), language=None, wrap_lines=True)


def _comparison(comparison: Comparison, base: RunChoice, new: RunChoice, *, gated: bool) -> None:
    st.caption(f"base: {base.label}  \nnew: {new.label}")
    for warning in comparison.environment_warnings:
        st.warning(warning)
    _verdict_message(comparison, gated)
    rows: list[dict[str, object]] = []
    for item in comparison.items:
        busy = "†" if item.estimator != "median" else ""
        rows.append(
            {
                "benchmark": item.benchmark,
                "timer": item.timer,
                "base": format_seconds(item.base_estimate_s),
                "new": format_seconds(item.new_estimate_s),
                "ratio": f"{item.ratio:.3f}{busy}",
                "95% CI": f"{item.ratio_ci_low:.3f} … {item.ratio_ci_high:.3f}",
                "p": f"{item.p_value:.2g}",
                "change": item.change,
                "gate": item_verdict(comparison, item.benchmark),
            }
        )
    for side, names in (("base", comparison.only_in_base), ("new", comparison.only_in_new)):
        rows.extend({"benchmark": name, "change": f"{side} only", "gate": "-"} for name in names)
    st.dataframe(rows, hide_index=True, key="comparison_table")
    if comparison.geomean_ratio is not None:
        ratio = comparison.geomean_ratio
        st.caption(
            f"geometric mean ratio (new/base) over {len(comparison.items)} benchmark(s): "
            f"{ratio:.3f} ({(ratio - 1) * 100:+.1f}%); † judged on the lower decile "
            "(a busy run)"
        )


def _comparison_figure(comparison: Comparison, settings: DashboardSettings) -> None:
    if not comparison.items:
        return
    path = draw_comparison(comparison, _figures_root(settings))
    st.image(str(path), caption="comparison", width="stretch")


# -- Live server --------------------------------------------------------------------------


def _live_page(settings: DashboardSettings) -> None:
    st.header("Live server")
    url = st.text_input(
        "as-deploy server URL", value=settings.server_url or "", key="server_url"
    ).strip()
    if not url:
        st.info("Type the URL of a running `as-deploy serve` (for example http://127.0.0.1:8000).")
        return
    if not url.startswith(("http://", "https://")):
        st.error(f"{url!r} is not an http:// or https:// URL")
        return
    key = f"history::{url}"
    if key not in st.session_state:
        st.session_state[key] = LiveHistory(url, keep=settings.history)
    history: LiveHistory = st.session_state[key]
    st.caption(f"Reading {url.rstrip('/')}/metrics every {settings.refresh_s:g} s.")

    @st.fragment(run_every=timedelta(seconds=settings.refresh_s))
    def live() -> None:
        try:
            history.add(read_metrics(url, timeout_s=settings.metrics_timeout_s))
        except MetricsUnavailableError as exc:
            st.error(f"No metrics: {exc}")
        _live_figures(history)

    live()


def _live_figures(history: LiveHistory) -> None:
    latest = history.latest
    if latest is None:
        return
    intervals = history.intervals()
    last = intervals[-1] if intervals else None
    top = st.columns(5)
    top[0].metric("requests answered", f"{latest.total_requests:.0f}")
    top[1].metric("errors (4xx, 5xx)", f"{latest.total_errors:.0f}")
    top[2].metric("requests/s", format_rate(last.requests_per_s) if last else "-")
    top[3].metric("queue depth", f"{latest.queue_depth:.0f}")
    top[4].metric("in flight", f"{latest.in_flight:.0f}")
    second = st.columns(5)
    second[0].metric("latency p50", format_seconds(last.p50_s) if last else "-")
    second[1].metric("latency p99", format_seconds(last.p99_s) if last else "-")
    mean_batch = last.mean_batch_size if last else None
    second[2].metric("mean batch size", f"{mean_batch:.1f}" if mean_batch is not None else "-")
    second[3].metric("errors/s", format_rate(last.errors_per_s) if last else "-")
    second[4].metric("models loaded", f"{latest.loaded_models:.0f}")
    if len(intervals) < 2:
        st.caption("The charts appear after a few readings.")
        return
    import polars as pl

    start = intervals[0].at_s
    frame = pl.DataFrame(
        {
            "seconds": [i.at_s - start for i in intervals],
            "requests/s": [i.requests_per_s for i in intervals],
            "errors/s": [i.errors_per_s for i in intervals],
            "p50 (ms)": [None if i.p50_s is None else i.p50_s * 1e3 for i in intervals],
            "p90 (ms)": [None if i.p90_s is None else i.p90_s * 1e3 for i in intervals],
            "p99 (ms)": [None if i.p99_s is None else i.p99_s * 1e3 for i in intervals],
            "mean batch size": [i.mean_batch_size for i in intervals],
            "queue depth": [i.queue_depth for i in intervals],
        }
    )
    left, right = st.columns(2)
    left.line_chart(frame, x="seconds", y=["requests/s", "errors/s"], y_label="per second")
    right.line_chart(frame, x="seconds", y=["p50 (ms)", "p90 (ms)", "p99 (ms)"], y_label="ms")
    left.line_chart(frame, x="seconds", y=["mean batch size"], y_label="rows per inference")
    right.line_chart(frame, x="seconds", y=["queue depth"], y_label="requests waiting")


# -- Training -----------------------------------------------------------------------------


def _training_page(settings: DashboardSettings) -> None:
    st.header("Training runs")
    default = "\n".join(str(p) for p in settings.training_dirs)
    text = st.text_area(
        "training runs, or folders holding them (one per line)",
        value=default,
        key="training_dirs",
    )
    places = _lines(text)
    if not places:
        st.info("Type the folder of a run the training monitor writes (it holds metrics.jsonl).")
        return
    runs: list[Path] = []
    for place in places:
        try:
            runs.extend(find_runs([place]))
        except TrainingRunError as exc:
            st.error(str(exc))
    if not runs:
        return
    labels = [str(run) for run in runs]
    chosen = Path(st.selectbox("run", labels, key="training_run"))

    @st.fragment(run_every=timedelta(seconds=settings.refresh_s))
    def live() -> None:
        _training_run(chosen)

    live()


def _training_run(path: Path) -> None:
    try:
        run = load_run(path)
    except (TrainingRunError, OSError, ValueError) as exc:
        st.error(f"Cannot read {path}: {exc}")
        return
    steps = run.steps
    st.caption(
        f"{steps.height} steps, {run.evaluations.height} evaluations, {len(run.events)} events"
    )
    if steps.height and "loss" in steps.columns:
        frame = steps
        left, right = st.columns(2)
        left.line_chart(frame, x="step", y="loss", y_label="loss")
        if "samples_per_s" in steps.columns:
            right.line_chart(frame, x="step", y="samples_per_s", y_label="samples/s")
    if run.evaluations.height:
        st.subheader("Evaluations")
        st.dataframe(run.evaluations, hide_index=True)
    st.subheader("Events")
    if not run.events:
        st.caption("No event: the detectors noticed nothing.")
        return
    for event in run.events:
        if event.action in ("stop", "rollback"):
            st.warning(f"step {event.step}: {event.kind}: {event.message} ({event.action})")
    st.dataframe(run.events_table(), hide_index=True)


# -- Studies ------------------------------------------------------------------------------


def _studies_page(settings: DashboardSettings) -> None:
    st.header("Optimization studies")
    st.caption(
        "The Optuna studies of `as-optimize run --search optuna`: every completed trial, "
        "and Optuna's Pareto front (infeasible trials, over the quality gate, left out)."
    )
    if not optuna_available():
        st.info(
            'Reading studies needs Optuna: `uv add "as-dashboard[studies]"` '
            "(or as-optimize's `search` extra)."
        )
        return
    text = st.text_area(
        "Optuna storages: a study.db, the run's output folder, or a database URL (one per line)",
        value="\n".join(settings.studies),
        key="studies",
    )
    choices: list[tuple[str, str]] = []
    for line in _lines(text):
        try:
            url = storage_of(line)
            choices.extend((url, name) for name in list_studies(url))
        except StudyError as exc:
            st.error(str(exc))
    if not choices:
        if not _lines(text):
            st.info("Type the storage of a study (as-optimize writes OUTPUT/study.db).")
        return
    labels = [f"{name} ({url})" for url, name in choices]
    url, name = choices[labels.index(st.selectbox("study", labels, key="study"))]
    try:
        view = load_study_view(url, name)
    except StudyError as exc:
        st.error(str(exc))
        return
    states = ", ".join(f"{count} {state.lower()}" for state, count in sorted(view.states.items()))
    st.caption(
        f"{len(view.trials)} completed trials ({states}); {len(view.front)} on the Pareto "
        f"front; objectives: "
        + ", ".join(f"{o} ({d})" for o, d in zip(view.objectives, view.directions, strict=True))
    )
    if not view.trials:
        return
    if len(view.objectives) > 1:
        left, right = st.columns(2)
        x = left.selectbox("x", view.objectives, index=0, key="study_x")
        y = right.selectbox("y", view.objectives, index=len(view.objectives) - 1, key="study_y")
        import polars as pl

        points = pl.DataFrame(
            {
                x: [t.values[x] for t in view.trials],
                y: [t.values[y] for t in view.trials],
                "trial": [
                    "Pareto front" if t.on_front else "dominated or infeasible" for t in view.trials
                ],
            }
        )
        st.scatter_chart(points, x=x, y=y, color="trial")
    st.dataframe(view.table(), hide_index=True, key="study_table")


# -- The script ---------------------------------------------------------------------------


def main() -> None:
    """Lay out the page the sidebar chooses (Streamlit runs this on every interaction)."""
    st.set_page_config(page_title="as-toolkit dashboard", layout="wide")
    try:
        settings = _settings()
    except (ValueError, json.JSONDecodeError) as exc:
        st.error(f"Invalid settings: {exc}")
        return
    _configure_logging(settings)
    st.sidebar.title("as-toolkit")
    page = st.sidebar.radio("page", PAGES, key="page")
    # Always drawn, so that what was typed survives a visit to another page.
    stores = st.sidebar.text_area(
        "result stores or exports (one per line)",
        value="\n".join(str(p) for p in settings.stores),
        key="stores",
        height=120,
    )
    if page in ("Benchmarks", "Compare runs"):
        sources = _open_sources(_lines(stores))
        if page == "Benchmarks":
            _guarded("The benchmarks page", lambda: _benchmarks_page(sources, settings))
        else:
            _guarded("The comparison", lambda: _compare_page(sources, settings))
    elif page == "Live server":
        _guarded("The live page", lambda: _live_page(settings))
    elif page == "Training":
        _guarded("The training page", lambda: _training_page(settings))
    else:
        _guarded("The studies page", lambda: _studies_page(settings))
