"""The search's report for people: ``report.md`` and a self-contained ``report.html``.

One real, short search on the digits CNN (static int8, which passes the 1 point gate, and
a candidate whose classifier rows are rotated, which loses most of its accuracy) gives
the report every test reads.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import html
import os
import re
from pathlib import Path
from typing import Any

import pytest

from as_bench.report import escape_markdown
from as_core.fmt import format_seconds
from as_optimize.compress import (
    OrtStaticInt8,
    QualityGate,
    SearchOptions,
    SearchReport,
    run_search,
)
from as_optimize.compress._report import (
    FIGURE_NAME,
    describe_candidate,
    rejection_figure,
    winner_sentence,
    write_report,
)


def _options(broken_head: Any) -> SearchOptions:
    values: dict[str, Any] = {
        "max_time_s": 0.05,
        "min_time_s": 0.01,
        "threads": 1,
        "trials": 2,
        "calibration_examples": 48,
        "batch_sizes": (1, 8),
        "techniques": [
            OrtStaticInt8(methods=("MinMax",), sizes=(48,), per_channel=(False,)),
            broken_head(),
        ],
    }
    if "stages" in {f.name for f in dataclasses.fields(SearchOptions)}:
        values["stages"] = []  # techniques alone: no torch stage to train
    return SearchOptions(**values)


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory, broken_head: Any
) -> tuple[SearchReport, Path, Path, Path]:
    """The search's report, and ``report.md`` and ``report.html`` written from it.

    The search runs once per test run: pytest-xdist workers share the run's temporary
    folder (the root conftest's), and the first to take the lock searches while the
    others wait and read its ``report.json``.
    """
    shared = os.environ.get("AS_TOOLKIT_TEST_USER_DIRS")
    root = Path(shared) if shared else tmp_path_factory.mktemp("shared")
    searched = root / "compress-report-search"
    with (root / "compress-report-search.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (searched / "report.json").is_file():
            report = SearchReport.model_validate_json((searched / "report.json").read_text())
        else:
            gate = QualityGate(max_accuracy_drop=1.0)
            report = run_search("digits-cnn", searched, gate, _options(broken_head))
    output = tmp_path_factory.mktemp("report")
    markdown, page = write_report(report, output)
    return report, output, markdown, page


def _by_technique(report: SearchReport, technique: str) -> Any:
    return next(c for c in report.candidates if c.technique == technique)


def test_the_winner_sentence_carries_the_reports_own_figures(
    written: tuple[SearchReport, Path, Path, Path],
) -> None:
    report, _, markdown, page = written
    int8 = _by_technique(report, "ort-static-int8")
    assert int8.status == "passed"
    # Which model wins depends on this machine's timings (int8 and fp32 often tie, and a
    # tie goes to the smaller); the sentence is checked for int8 as the winner.
    chosen = report.model_copy(update={"winner": int8.id})
    onnx = report.baseline.latency["1"].median_s / int8.latency["1"].median_s
    eager = report.eager["latency"]["1"]["median_s"] / int8.latency["1"].median_s
    smaller = (report.baseline.size_bytes or 0) / (int8.size_bytes or 1)
    assert smaller > 2  # int8 weights: the figure below must say "smaller"
    sentence = winner_sentence(chosen)
    assert sentence.startswith("ort-static-int8 (MinMax, 48 calibration examples, per-tensor)")
    figures = [float(x) for x in re.findall(r"([0-9.]+)x", sentence)]
    # As many figures as compared with, in order, each the report's own to its rounding.
    assert len(figures) == 3
    for shown, real in zip(figures, [onnx, eager, smaller], strict=True):
        # A slower model's figure is how many times slower it is.
        assert shown == pytest.approx(real if real >= 1 else 1 / real, rel=0.06, abs=0.006)
    assert ("faster than fp32 ONNX" if onnx >= 1 else "slower than fp32 ONNX") in sentence
    assert ("than eager" if eager >= 1 else "slower than eager") in sentence
    assert f"{smaller:.1f}x smaller" in sentence
    assert f"{round(-int8.quality.accuracy_drop, 1) + 0.0:+.1f} pt accuracy" in sentence
    assert sentence.endswith("(batch 1)")
    # The files say what this search chose, and the search's own why.
    actual = winner_sentence(report)
    if report.winner == report.baseline.id:
        assert actual.startswith("the fp32 ONNX reference kept")
    else:
        winner = next(c for c in report.candidates if c.id == report.winner)
        assert actual.startswith(f"{describe_candidate(winner)} chosen: ")
    for text in (markdown.read_text(), page.read_text()):
        assert report.winner_reason.split(":")[0] in text
    assert html.escape(actual) in page.read_text()
    assert escape_markdown(actual) in markdown.read_text()


def test_a_rejected_candidate_shows_the_figure_that_failed_the_gate(
    written: tuple[SearchReport, Path, Path, Path],
) -> None:
    report, _, markdown, page = written
    rotated = _by_technique(report, "rotated-head")
    assert rotated.status == "rejected" and rotated.quality.accuracy_drop > 1
    line = f"rotated-head rejected: {-rotated.quality.accuracy_drop:+.1f} pt > 1 pt gate"
    assert rejection_figure(report, rotated) == line.split(": ", 1)[1]
    assert escape_markdown(line) in markdown.read_text()
    assert html.escape(line) in page.read_text()


def test_the_table_has_every_model_with_its_latency_ci_and_status(
    written: tuple[SearchReport, Path, Path, Path],
) -> None:
    report, _, markdown, _ = written
    text = markdown.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = rows[0]
    assert "latency b=1 (95% CI)" in header and "latency b=8 (95% CI)" in header
    body = rows[1:]
    assert len(body) == 2 + len(report.candidates)  # eager, fp32 ONNX, each candidate
    assert body[0].startswith("| eager PyTorch fp32 | reference |")
    lat = report.baseline.latency["8"]
    ci = f"{format_seconds(lat.median_s)} ({format_seconds(lat.ci_low_s)}-"
    assert ci in body[1] and "| baseline" in body[1]
    int8 = _by_technique(report, "ort-static-int8")
    (int8_row,) = [row for row in body if row.startswith(f"| {describe_candidate(int8)} |")]
    assert "| passed" in int8_row
    speedup = report.eager["latency"]["8"]["median_s"] / int8.latency["8"].median_s
    assert f"/ {speedup:.2f}x |" in int8_row  # batch 8's speed-up against eager
    assert sum("(winner)" in row for row in body) == 1
    assert any("| rejected |" in row for row in body)


def test_the_html_is_self_contained_with_the_pareto_figure_embedded(
    written: tuple[SearchReport, Path, Path, Path],
) -> None:
    _, output, markdown, page = written
    text = page.read_text()
    # Nothing to fetch: no http(s) URL anywhere an asset could come from.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text, re.I)
    assert "<link" not in text and "<script" not in text
    assert "default-src 'none'" in text
    (uri,) = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert base64.b64decode(uri) == (output / FIGURE_NAME).read_bytes()
    assert f"]({FIGURE_NAME})" in markdown.read_text()


def test_stages_and_techniques_not_measured_are_reported_with_their_reasons(
    written: tuple[SearchReport, Path, Path, Path], tmp_path: Path
) -> None:
    report, *_ = written
    int8 = _by_technique(report, "ort-static-int8")
    piped = int8.model_copy(
        update={"id": "prune-then-int8", "stage": "prune", "stage_knobs": {"sparsity": 0.5}}
    )
    assert describe_candidate(piped).startswith("prune (sparsity 0.5) then ort-static-int8 (")
    skipped = int8.model_copy(
        update={
            "id": "int4",
            "technique": "int4",
            "knobs": {},
            "status": "not measured",
            "reason": "its runtime is not installed",
            "latency": {},
            "quality": None,
        }
    )
    edited = report.model_copy(update={"candidates": [*report.candidates, piped, skipped]})
    markdown, page = write_report(edited, tmp_path / "r")
    for text in (markdown.read_text(), page.read_text()):
        assert "int4: not measured: its runtime is not installed" in text
        assert "prune (sparsity 0.5) then ort-static-int8" in text
