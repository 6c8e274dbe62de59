"""The report as Markdown (GitHub-flavoured): images linked by relative path.

Text from results is escaped twice over: HTML-escaped, because Markdown renderers pass
raw HTML through (a benchmark called ``<script>`` must stay text), and Markdown's own
punctuation backslash-escaped, so that a name cannot open a link, an emphasis or a new
table cell.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from as_bench.report._data import FUNCTION_FINDINGS, ReportData, Table, results_heading
from as_bench.report._insights import Insight
from as_bench.report._recommend import METHOD, Recommendation

__all__ = ["escape_markdown", "markdown_table", "render_markdown"]

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_LEVEL_PREFIX = {"warning": "**Warning:** ", "unavailable": "*Not available:* ", "info": ""}


def escape_markdown(text: object) -> str:
    """``text`` as literal Markdown inline text: one line, no HTML, no markup."""
    flat = " ".join(str(text).split())  # a newline would end a table row or list item
    return _SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def markdown_table(table: Table) -> list[str]:
    """``table`` as the lines of a GitHub-flavoured Markdown table, then a blank line.

    Every cell is escaped (:func:`escape_markdown`); columns in ``table.numeric`` are
    right-aligned.
    """
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in table.headers) + " |",
        "|"
        + "|".join(" ---: " if i in table.numeric else " --- " for i in range(len(table.headers)))
        + "|",
    ]
    lines.extend("| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows)
    return [*lines, ""]


def _recommendations(recommendations: list[Recommendation]) -> list[str]:
    lines = ["## Recommendation", "", METHOD, ""]
    current: tuple[str | None, str] | None = None
    for rec in recommendations:
        if (rec.machine, rec.workload) != current:
            current = (rec.machine, rec.workload)
            where = f" on {rec.machine}" if rec.machine else ""
            lines += [f"### {escape_markdown(rec.workload + where)}", ""]
        best = " (highest throughput of the workload)" if rec.best_throughput else ""
        lines.append(f"- **Batch {rec.batch_size}{best}:** {escape_markdown(rec.summary)}")
        lines.extend(f"  - {escape_markdown(line)}" for line in rec.evidence)
    return [*lines, ""]


def _insights(insights: list[Insight], heading: str = "Apple Silicon insights") -> list[str]:
    lines = [f"## {heading}"]
    topic = None
    for insight in insights:
        if insight.topic != topic:
            topic = insight.topic
            lines += ["", f"### {escape_markdown(topic.capitalize())}", ""]
        lines.append(f"- {_LEVEL_PREFIX[insight.level]}{escape_markdown(insight.text)}")
    return [*lines, ""]


def render_markdown(data: ReportData) -> str:
    """The report as one Markdown document."""
    lines = [f"# {escape_markdown(data.title)}", ""]
    lines += [f"- {escape_markdown(line)}" for line in data.overview]
    lines.append(f"- report generated {data.generated_at:%Y-%m-%d %H:%M} UTC")
    lines.append("")
    lines += [f"> **Note:** {escape_markdown(note)}\n" for note in data.notes]
    if data.recommendations:
        lines += _recommendations(data.recommendations)
    if data.function_insights:
        lines += _insights(data.function_insights, FUNCTION_FINDINGS)
    lines += ["## Environment", ""]
    lines += markdown_table(
        Table(headers=["what", "value"], rows=[list(r) for r in data.environment])
    )
    lines += ["## Noise warnings", ""]
    if not data.warnings:
        lines += ["No measurement recorded a noise warning.", ""]
    for group in data.warnings:
        names = ", ".join(group.benchmarks)
        lines.append(f"- {escape_markdown(group.text)} ({escape_markdown(names)})")
    lines += ["", f"## {results_heading(data)}", ""]
    lines.append(
        "Latency is a synchronised call (what a caller waits for); device time comes from "
        "device events where the device has them (CUDA, MPS): back-to-back (the default) is "
        "one event pair around calls queued back to back, the GPU time per call of a stream "
        "of calls; per call is an event pair around each synchronised call, the device's "
        "share of one call. They agree on compute-bound calls; on launch-bound ones per "
        "call reads higher (23% on a batch-1 MLP on an H200)."
    )
    lines.append("")
    for workload, table in data.workloads.items():
        lines += [f"### {escape_markdown(workload)}", "", *markdown_table(table)]
    if data.comparison is not None:
        lines += ["## Comparison with the baseline", ""]
        lines += [f"- {escape_markdown(line)}" for line in data.comparison.summary]
        lines += [
            f"- **Environment:** {escape_markdown(w)}" for w in data.comparison.environment_warnings
        ]
        lines += ["", *markdown_table(data.comparison.table)]
    if data.insights:
        lines += _insights(data.insights)
    lines += ["## Figures", ""]
    if not data.figures:
        lines += ["No figures were drawn.", ""]
    for figure in data.figures:
        title = escape_markdown(figure.title)
        lines += [f"### {title}", "", f"![{title}]({quote(figure.path.as_posix())})", ""]
    return "\n".join(lines).rstrip() + "\n"
