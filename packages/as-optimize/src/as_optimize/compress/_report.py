"""A search's report for people: ``report.md`` and a self-contained ``report.html``.

:func:`write_report` turns a :class:`SearchReport` (``report.json``) into the same text
twice, in as-bench's report style and through its public building blocks
(:mod:`as_bench.report`, :func:`as_bench.plots.plot_tradeoff`): the winner and why, in
figures (``ort-static-int8 (MinMax, per-tensor) chosen: 2.9x faster than fp32 ONNX, 5.1x
than eager, 3.8x smaller, -0.3 pt accuracy``); each rejected candidate with the figure
that failed the gate (``rejected: -4.1 pt > 1 pt gate``); the techniques not measured or
not applicable with their reasons; a table of every model (latency per batch size with
its 95% confidence interval, size, quality, speed-ups against eager PyTorch and against
the reference every candidate is compared with, the fp32 ONNX model on the CPU, status);
and the latency-size plane with the Pareto front. The HTML
embeds its figure and fetches nothing when opened.

Reports of other versions of the search are read with defaults: a field a report lacks
(a pipeline's ``stage``, a ``not measured`` status, ``target_notes``) is simply left out.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from as_core.fmt import format_bytes, format_seconds
from as_core.fs import write_text_atomic
from as_optimize.compress._search import CandidateResult, SearchReport
from as_optimize.exceptions import CompressionError

__all__ = [
    "FIGURE_NAME",
    "describe_candidate",
    "rejection_figure",
    "winner_sentence",
    "write_report",
]

#: The Pareto figure's file, relative to the report's folder (the Markdown links to it).
FIGURE_NAME = "images/pareto.png"

_STATUS_ORDER = (
    "baseline",
    "passed",
    "rejected",
    "not measured",
    "not applicable",
    "not tried",
)
_KNOB_WORDS = {
    ("per_channel", True): "per-channel",
    ("per_channel", False): "per-tensor",
    ("keep_io_types", True): "fp32 inputs and outputs",
    ("keep_io_types", False): "fp16 inputs and outputs",
}


def _knob_words(knobs: Mapping[str, Any]) -> list[str]:
    words = []
    for key, value in knobs.items():
        known = _KNOB_WORDS.get((key, value)) if isinstance(value, bool) else None
        if known is not None:
            words.append(known)
        elif isinstance(value, bool):
            words.append(key.replace("_", " ") if value else f"no {key.replace('_', ' ')}")
        elif key in ("method", "calibrate_method") and isinstance(value, str):
            words.append(value)
        elif key == "size" and isinstance(value, int):
            words.append(f"{value} calibration examples")
        elif isinstance(value, (list, tuple)):
            shown = ", ".join(str(v) for v in value) or "none"
            words.append(f"{key.replace('_', ' ')} {shown}")
        else:
            words.append(f"{key.replace('_', ' ')} {value}")
    return words


def describe_candidate(candidate: CandidateResult) -> str:
    """A model of the search in words: its technique and knobs, after its torch stage if any.

    ``ort-static-int8 (MinMax, per-tensor, 64 calibration examples)``; a pipeline reads
    ``prune (sparsity 0.5) then ort-dynamic-int8 (per-channel)``.
    """
    knobs = _knob_words(candidate.knobs)
    text = candidate.technique + (f" ({', '.join(knobs)})" if knobs else "")
    stage = getattr(candidate, "stage", None)
    if stage:
        stage_knobs = _knob_words(getattr(candidate, "stage_knobs", {}) or {})
        shown = f" ({', '.join(stage_knobs)})" if stage_knobs else ""
        text = f"{stage}{shown} then {text}"
    return text


def _times(ratio: float) -> str:
    if ratio >= 10:
        return f"{ratio:.0f}x"
    return f"{ratio:.1f}x" if ratio >= 2 else f"{ratio:.2f}x"


def _faster(ratio: float | None, than: str) -> str | None:
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    if ratio >= 1:
        return f"{_times(ratio)} faster than {than}"
    return f"{_times(1 / ratio)} slower than {than}"


def _median(latency: Any) -> float | None:
    if latency is None:
        return None
    value = latency.get("median_s") if isinstance(latency, Mapping) else latency.median_s
    return float(value) if value is not None else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or numerator <= 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class _Speedups:
    vs_onnx: float | None
    vs_eager: float | None


def _speedups(report: SearchReport, candidate: CandidateResult, batch: str) -> _Speedups:
    own = _median(candidate.latency.get(batch))
    onnx = _median(report.baseline.latency.get(batch))
    eager = _median((report.eager.get("latency") or {}).get(batch))
    return _Speedups(_ratio(onnx, own), _ratio(eager, own))


def _points(change: float, digits: int) -> str:
    """A signed change in points, without a minus sign on a zero (``+0.0``, ``-0.3``)."""
    rounded = round(change, digits) + 0.0  # -0.0 + 0.0 is 0.0
    return f"{rounded:+.{digits}f}"


def _quality_change(candidate: CandidateResult) -> str | None:
    quality = candidate.quality
    if quality is None:
        return None
    if quality.accuracy_drop is not None:
        return f"{_points(-quality.accuracy_drop, 1)} pt accuracy"
    return f"mean cosine {quality.mean_cosine:.4f} vs the reference"


def _reference(report: SearchReport) -> str:
    """What every candidate is compared with: ``fp32 ONNX`` on the CPU target."""
    return str(getattr(report, "reference", "") or "fp32 ONNX")


def _find(report: SearchReport, cid: str) -> CandidateResult | None:
    return next((c for c in [report.baseline, *report.candidates] if c.id == cid), None)


def _first_batch(report: SearchReport) -> str:
    return str(report.batch_sizes[0]) if report.batch_sizes else "1"


def winner_sentence(report: SearchReport) -> str:
    """The winner and its figures at the first batch size, in one sentence.

    ``ort-static-int8 (Percentile, per-tensor) chosen: 2.9x faster than fp32 ONNX, 5.1x
    than eager, 3.8x smaller, -0.3 pt accuracy (batch 1)``; when the reference (the fp32
    ONNX model on the CPU) won, it says so.

    Raises:
        CompressionError: The report names a winner it does not hold.
    """
    winner = _find(report, report.winner)
    if winner is None:
        raise CompressionError(f"the report names a winner {report.winner!r} it does not hold")
    batch = _first_batch(report)
    speed = _speedups(report, winner, batch)
    if winner is report.baseline or winner.status == "baseline":
        eager = _faster(speed.vs_eager, "eager PyTorch")
        return (
            f"the {_reference(report)} reference kept (no candidate passing the gate beat it "
            f"at batch {batch})" + (f": {eager}" if eager else "")
        )
    parts = []
    onnx = _faster(speed.vs_onnx, _reference(report))
    if onnx:
        parts.append(onnx)
    eager = _faster(speed.vs_eager, "eager")
    if eager:
        both_faster = onnx is not None and "faster" in onnx and "faster" in eager
        parts.append(eager.replace(" faster than eager", " than eager") if both_faster else eager)
    size = _ratio(
        float(report.baseline.size_bytes or 0) or None, float(winner.size_bytes or 0) or None
    )
    if size is not None:
        parts.append(f"{_times(size)} smaller" if size >= 1 else f"{_times(1 / size)} larger")
    quality = _quality_change(winner)
    if quality:
        parts.append(quality)
    shown = ", ".join(parts) or "no figures recorded"
    return f"{describe_candidate(winner)} chosen: {shown} (batch {batch})"


_DROP_GATE = re.compile(r"accuracy drop <= ([0-9.]+) pt")
_COSINE_GATE = re.compile(r"mean cosine vs fp32 >= (-?[0-9.]+)")


def rejection_figure(report: SearchReport, candidate: CandidateResult) -> str:
    """Why ``candidate`` was rejected, as the figure against the gate when it has one.

    ``-4.1 pt > 1 pt gate`` or ``mean cosine 0.9712 < 0.99 gate``; a candidate that was
    not scored (its build or its runtime failed) gets its recorded reason.
    """
    quality = candidate.quality
    figures = []
    if quality is not None:
        drop = _DROP_GATE.search(report.gate)
        if drop and quality.accuracy_drop is not None:
            limit = float(drop.group(1))
            if quality.accuracy_drop > limit + 1e-9:
                figures.append(f"{_points(-quality.accuracy_drop, 1)} pt > {limit:g} pt gate")
        cosine = _COSINE_GATE.search(report.gate)
        if cosine and quality.mean_cosine < float(cosine.group(1)):
            figures.append(
                f"mean cosine {quality.mean_cosine:.4f} < {float(cosine.group(1)):g} gate"
            )
    return "; ".join(figures) if figures else candidate.reason


def _latency_cell(latency: Any) -> str:
    if latency is None:
        return "-"
    data = latency if isinstance(latency, Mapping) else latency.model_dump()
    median, low, high = data.get("median_s"), data.get("ci_low_s"), data.get("ci_high_s")
    if median is None:
        return "-"
    ci = "" if low is None or high is None else f" ({format_seconds(low)}-{format_seconds(high)})"
    return f"{format_seconds(median)}{ci}"


def _quality_cell(candidate: CandidateResult) -> str:
    quality = candidate.quality
    if quality is None:
        return "-"
    if quality.accuracy is not None:
        drop = quality.accuracy_drop
        return f"{quality.accuracy:.2f}%" + ("" if drop is None else f" ({_points(-drop, 2)} pt)")
    return f"cos {quality.mean_cosine:.4f} (min {quality.min_cosine:.4f})"


def _speedup_cell(values: Sequence[float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.2f}x" for v in values)


@dataclass
class _Content:
    title: str
    overview: list[str]
    winner: str
    why: str
    rejected: list[str]
    skipped: list[str]
    notes: list[str]
    headers: list[str]
    rows: list[list[str]]
    numeric: frozenset[int]
    figure_caption: str
    figure_missing: str | None = None
    batches: list[str] = field(default_factory=list)


def _table(report: SearchReport) -> tuple[list[str], list[list[str]], frozenset[int]]:
    batches = [str(b) for b in report.batch_sizes] or ["1"]
    joined = "/".join(batches)
    headers = ["model", "status"]
    headers += [f"latency b={b} (95% CI)" for b in batches]
    headers += [
        "size",
        "quality",
        f"vs eager (b={joined})",
        f"vs {_reference(report)} (b={joined})",
    ]
    eager_latency = report.eager.get("latency") or {}
    accuracy = report.eager.get("accuracy")
    rows = [
        [
            "eager PyTorch fp32",
            "reference",
            *(_latency_cell(eager_latency.get(b)) for b in batches),
            "-",
            "-" if accuracy is None else f"{float(accuracy):.2f}%",
            _speedup_cell([1.0 if eager_latency.get(b) else None for b in batches]),
            _speedup_cell(
                [
                    _ratio(_median(report.baseline.latency.get(b)), _median(eager_latency.get(b)))
                    for b in batches
                ]
            ),
        ]
    ]
    for candidate in [report.baseline, *report.candidates]:
        name = (
            f"{_reference(report)} (baseline)"
            if candidate is report.baseline
            else describe_candidate(candidate)
        )
        status = candidate.status + (" (winner)" if candidate.id == report.winner else "")
        if getattr(candidate, "pareto", False):
            status += ", Pareto"
        speed = [_speedups(report, candidate, b) for b in batches]
        rows.append(
            [
                name,
                status,
                *(_latency_cell(candidate.latency.get(b)) for b in batches),
                format_bytes(candidate.size_bytes),
                _quality_cell(candidate),
                _speedup_cell([s.vs_eager for s in speed]),
                _speedup_cell([s.vs_onnx for s in speed]),
            ]
        )
    numeric = frozenset(range(2, 2 + len(batches) + 1)) | {len(headers) - 2, len(headers) - 1}
    return headers, rows, numeric


def _content(report: SearchReport) -> _Content:
    headers, rows, numeric = _table(report)
    rejected = [
        f"{describe_candidate(c)} rejected: {rejection_figure(report, c)}"
        for c in report.candidates
        if c.status == "rejected"
    ]
    skipped = [
        f"{describe_candidate(c)}: {c.status}: {c.reason}"
        for c in report.candidates
        if c.status not in ("baseline", "passed", "rejected")
    ]
    overview = [
        f"workload {report.workload} ({report.task}), target {report.target}"
        + (f" ({getattr(report, 'device', '')})" if getattr(report, "device", "") else ""),
        f"quality gate: {report.gate}",
        f"scored on {report.scoring_data} ({report.scoring_examples} examples); "
        f"{report.calibration_examples} examples set aside for calibration",
        f"batch sizes {', '.join(str(b) for b in report.batch_sizes)} (the first ranks), "
        f"{report.threads} thread(s); search took {report.elapsed_s:.0f} s",
        "versions: " + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
    ]
    notes = [str(n) for n in getattr(report, "target_notes", []) or []]
    return _Content(
        title=f"as-optimize: {report.workload} on {report.target}",
        overview=overview,
        winner=winner_sentence(report),
        why=report.winner_reason,
        rejected=rejected,
        skipped=skipped,
        notes=notes,
        headers=headers,
        rows=rows,
        numeric=numeric,
        figure_caption=(
            f"Median latency at batch {_first_batch(report)} against size on disk; the "
            "Pareto front is drawn among the baseline and the candidates that passed the gate"
        ),
        batches=[str(b) for b in report.batch_sizes],
    )


def _draw(report: SearchReport, path: Path) -> str | None:
    """The Pareto figure at ``path``; ``None``, or why there is none."""
    from as_bench.plots import TradeoffPoint, plot_tradeoff

    batch = _first_batch(report)
    points = []
    for candidate in [report.baseline, *report.candidates]:
        median = _median(candidate.latency.get(batch))
        if median is None or not candidate.size_bytes:
            continue
        label = _reference(report) if candidate is report.baseline else candidate.id
        points.append(
            TradeoffPoint(
                label=label,
                latency_s=median,
                size_bytes=float(candidate.size_bytes),
                group=candidate.status,
                contender=candidate.status in ("baseline", "passed"),
            )
        )
    try:
        plot_tradeoff(
            points,
            path,
            title=f"{report.workload}: median latency at batch {batch} against size on disk",
            groups=_STATUS_ORDER,
        )
    except ValueError as exc:
        return f"no figure: {exc}"
    return None


def _markdown(content: _Content, figure: str | None) -> str:
    from as_bench.report import Table, escape_markdown, markdown_table

    e = escape_markdown
    lines = [f"# {e(content.title)}", ""]
    lines += [f"- {e(line)}" for line in content.overview]
    lines += ["", "## Winner", "", f"**{e(content.winner)}**", "", f"Why: {e(content.why)}", ""]
    lines += ["## Rejected", ""]
    lines += [f"- {e(line)}" for line in content.rejected] or ["No candidate was rejected."]
    lines += ["", "## Not measured, and why", ""]
    lines += [f"- {e(line)}" for line in [*content.skipped, *content.notes]] or [
        "Every technique was measured."
    ]
    lines += ["", "## Every model", ""]
    lines += markdown_table(Table(content.headers, content.rows, content.numeric))
    lines += ["## Pareto front", ""]
    if figure is None:
        lines += [f"![{e(content.figure_caption)}]({FIGURE_NAME})", "", e(content.figure_caption)]
    else:
        lines.append(e(figure))
    return "\n".join(lines).rstrip() + "\n"


def _html(content: _Content, figure: str | None, folder: Path) -> str:
    from as_bench.report import Table, html_document, html_table, png_data_uri

    e = html.escape
    body = [f"<h1>{e(content.title)}</h1>"]
    body += [f'<p class="overview">{e(line)}</p>' for line in content.overview]
    body += [
        '<h2 id="winner">Winner</h2>',
        f'<p class="rec"><span class="what good">{e(content.winner)}</span></p>',
        f'<p class="evidence">Why: {e(content.why)}</p>',
        '<h2 id="rejected">Rejected</h2>',
    ]
    if content.rejected:
        body.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in content.rejected) + "</ul>")
    else:
        body.append("<p>No candidate was rejected.</p>")
    body.append('<h2 id="skipped">Not measured, and why</h2>')
    skipped = [*content.skipped, *content.notes]
    if skipped:
        body.append(
            "<ul>" + "".join(f'<li class="unavailable">{e(s)}</li>' for s in skipped) + "</ul>"
        )
    else:
        body.append("<p>Every technique was measured.</p>")
    body += [
        '<h2 id="models">Every model</h2>',
        html_table(Table(content.headers, content.rows, content.numeric)),
        '<h2 id="figures">Pareto front</h2>',
    ]
    if figure is None:
        uri = png_data_uri(folder / FIGURE_NAME)
        body.append(
            f'<figure><img src="{uri}" alt="{e(content.figure_caption)}">'
            f"<figcaption>{e(content.figure_caption)}</figcaption></figure>"
        )
    else:
        body.append(f'<p class="note">{e(figure)}</p>')
    return html_document(content.title, body)


def write_report(report: SearchReport, folder: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` of ``report`` into ``folder``.

    Both say the same (see the module's documentation); the figure is written to
    ``folder/images/pareto.png``, linked from the Markdown and embedded in the HTML as a
    data URI, so the HTML needs nothing else to display and fetches nothing.

    Args:
        report: The search's report (``report.json``).
        folder: Where to write (usually the search's output folder); created if missing.

    Returns:
        The Markdown file and the HTML file.

    Raises:
        CompressionError: The report names a winner it does not hold, or the files could
            not be written.
    """
    from as_bench import AsBenchError

    folder = Path(folder)
    content = _content(report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        figure = _draw(report, folder / FIGURE_NAME)
        markdown = folder / "report.md"
        page = folder / "report.html"
        write_text_atomic(markdown, _markdown(content, figure))
        write_text_atomic(page, _html(content, figure, folder))
    except (OSError, AsBenchError) as exc:
        raise CompressionError(f"cannot write the report into {folder}: {exc}") from exc
    return markdown, page
