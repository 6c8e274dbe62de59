"""The report as one self-contained HTML file: inline CSS, images as data URIs.

Nothing is fetched when the file is opened (it is meant to be mailed, archived and read
offline), and a Content-Security-Policy forbids any fetch or script in case a hostile
result slipped something past the escaping: every string from the results goes through
:func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from as_bench.exceptions import ResultStoreError
from as_bench.report._data import FUNCTION_FINDINGS, Figure, ReportData, Table, results_heading
from as_bench.report._insights import Insight
from as_bench.report._recommend import METHOD, Recommendation

__all__ = ["html_document", "html_table", "png_data_uri", "render_html"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
:root { color-scheme: light; --muted: #5b6470; --line: #d8dde3; --warn: #9a5b00;
        --warn-bg: #fff6e5; --na-bg: #f1f3f5; --ok: #1b7a3d; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 78rem; padding: 1.5rem 2rem 4rem; color: #1d232a;
       font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica,
       Arial, sans-serif; background: #fff; }
h1 { font-size: 1.8rem; margin: 0 0 .5rem; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 .4rem; }
ul { padding-left: 1.4rem; }
li { margin: .15rem 0; }
nav { margin: .8rem 0 0; font-size: .92rem; }
nav a { margin-right: 1rem; color: #0b5cad; text-decoration: none; }
.overview { color: var(--muted); margin: 0; }
.note { background: var(--na-bg); border-left: 4px solid var(--muted); padding: .5rem .8rem;
        margin: .6rem 0; }
.method { color: var(--muted); font-size: .92rem; }
.scroll { overflow-x: auto; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-size: .86rem; min-width: 40%; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.rec { margin: .3rem 0 .8rem; }
.rec .what { font-weight: 600; }
.evidence { color: #39424c; font-size: .92rem; margin-top: .2rem; }
.warning { background: var(--warn-bg); border-left: 4px solid var(--warn); padding: .15rem .5rem;
           list-style: none; margin-left: -1.4rem; }
.unavailable { background: var(--na-bg); list-style: none; margin-left: -1.4rem;
               padding: .15rem .5rem; color: var(--muted); }
.tag { font-weight: 600; }
.warning .tag { color: var(--warn); }
.good { color: var(--ok); }
.bad { color: var(--bad); }
figure { margin: 1rem 0 2rem; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .92rem; margin-top: .3rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
"""

_SECTIONS = [
    ("recommendation", "Recommendation"),
    ("functions", "Functions"),
    ("environment", "Environment"),
    ("warnings", "Noise warnings"),
    ("results", "Results"),
    ("comparison", "Comparison"),
    ("apple-silicon", "Apple Silicon"),
    ("figures", "Figures"),
]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_table(table: Table) -> str:
    """``table`` as an HTML table in a horizontally scrolling box, every cell escaped.

    Columns in ``table.numeric`` are right-aligned; a cell starting with ``FAILED`` is red.
    """
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            css = ' class="num"' if i in table.numeric else ""
            if cell.startswith("FAILED"):
                css = ' class="bad"'
            cells.append(f"<td{css}>{_e(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _recommendations(recommendations: list[Recommendation]) -> str:
    parts = ['<h2 id="recommendation">Recommendation</h2>', f'<p class="method">{_e(METHOD)}</p>']
    current: tuple[str | None, str] | None = None
    for rec in recommendations:
        if (rec.machine, rec.workload) != current:
            current = (rec.machine, rec.workload)
            where = f" on {rec.machine}" if rec.machine else ""
            parts.append(f"<h3>{_e(rec.workload + where)}</h3>")
        best = " (highest throughput of the workload)" if rec.best_throughput else ""
        css = "bad" if rec.choice is None else "good"
        evidence = "".join(f"<li>{_e(line)}</li>" for line in rec.evidence)
        parts.append(
            f'<div class="rec"><span class="what">Batch {rec.batch_size}{_e(best)}:</span> '
            f'<span class="{css}">{_e(rec.summary)}</span>'
            f'<ul class="evidence">{evidence}</ul></div>'
        )
    return "\n".join(parts)


def _insight(insight: Insight) -> str:
    tag = {"warning": "Warning: ", "unavailable": "Not available: ", "info": ""}[insight.level]
    label = f'<span class="tag">{tag}</span>' if tag else ""
    return f'<li class="{insight.level}">{label}{_e(insight.text)}</li>'


def _insights(
    insights: list[Insight],
    anchor: str = "apple-silicon",
    heading: str = "Apple Silicon insights",
) -> str:
    parts = [f'<h2 id="{anchor}">{_e(heading)}</h2>']
    topic = None
    for insight in insights:
        if insight.topic != topic:
            if topic is not None:
                parts.append("</ul>")
            topic = insight.topic
            parts.append(f"<h3>{_e(topic.capitalize())}</h3><ul>")
        parts.append(_insight(insight))
    if topic is not None:
        parts.append("</ul>")
    return "\n".join(parts)


def png_data_uri(path: Path) -> str:
    """The PNG file ``path`` as a ``data:`` URI, to embed in a self-contained page.

    Raises:
        ResultStoreError: The file cannot be read or is not a PNG file.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultStoreError(f"cannot embed the figure {path}: {exc}") from exc
    if not data.startswith(_PNG_MAGIC):
        raise ResultStoreError(f"cannot embed the figure {path}: it is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figures(figures: list[Figure], root: Path) -> str:
    parts = ['<h2 id="figures">Figures</h2>']
    if not figures:
        parts.append("<p>No figures were drawn.</p>")
    for figure in figures:
        uri = png_data_uri(root / figure.path)
        parts.append(
            f'<figure><img src="{uri}" alt="{_e(figure.title)}">'
            f"<figcaption>{_e(figure.title)}</figcaption></figure>"
        )
    return "\n".join(parts)


def _body(data: ReportData, root: Path) -> list[str]:
    shown = {
        "recommendation": bool(data.recommendations),
        "functions": bool(data.function_insights),
        "comparison": data.comparison is not None,
        "apple-silicon": bool(data.insights),
    }
    nav = "".join(
        f'<a href="#{anchor}">{_e(name)}</a>'
        for anchor, name in _SECTIONS
        if shown.get(anchor, True)
    )
    parts = [f"<h1>{_e(data.title)}</h1>"]
    parts += [f'<p class="overview">{_e(line)}</p>' for line in data.overview]
    parts.append(f"<nav>{nav}</nav>")
    parts += [f'<p class="note"><strong>Note:</strong> {_e(note)}</p>' for note in data.notes]
    if data.recommendations:
        parts.append(_recommendations(data.recommendations))
    if data.function_insights:
        parts.append(_insights(data.function_insights, "functions", FUNCTION_FINDINGS))
    parts.append('<h2 id="environment">Environment</h2>')
    parts.append(
        html_table(Table(headers=["what", "value"], rows=[list(r) for r in data.environment]))
    )
    parts.append('<h2 id="warnings">Noise warnings</h2>')
    if data.warnings:
        items = "".join(
            f'<li class="warning">{_e(g.text)} <em>({_e(", ".join(g.benchmarks))})</em></li>'
            for g in data.warnings
        )
        parts.append(f"<ul>{items}</ul>")
    else:
        parts.append("<p>No measurement recorded a noise warning.</p>")
    parts.append(f'<h2 id="results">{_e(results_heading(data))}</h2>')
    parts.append(
        "<p>Latency is a synchronised call (what a caller waits for); device time comes "
        "from device events where the device has them (CUDA, MPS): back-to-back (the "
        "default) is one event pair around calls queued back to back, the GPU time per "
        "call of a stream of calls; per call is an event pair around each synchronised "
        "call, the device's share of one call. They agree on compute-bound calls; on "
        "launch-bound ones per call reads higher (23% on a batch-1 MLP on an H200).</p>"
    )
    for workload, table in data.workloads.items():
        parts += [f"<h3>{_e(workload)}</h3>", html_table(table)]
    if data.comparison is not None:
        parts.append('<h2 id="comparison">Comparison with the baseline</h2><ul>')
        parts += [f"<li>{_e(line)}</li>" for line in data.comparison.summary]
        parts += [
            f'<li class="warning"><span class="tag">Environment: </span>{_e(w)}</li>'
            for w in data.comparison.environment_warnings
        ]
        parts += ["</ul>", html_table(data.comparison.table)]
    if data.insights:
        parts.append(_insights(data.insights))
    parts.append(_figures(data.figures, root))
    parts.append(
        f"<footer>Generated by as-bench on {data.generated_at:%Y-%m-%d %H:%M} UTC.</footer>"
    )
    return parts


def html_document(title: str, body: Sequence[str]) -> str:
    """A self-contained HTML page in the report's style: ``body``'s parts, one per line.

    The head holds the report's inline CSS and a Content-Security-Policy that forbids
    every fetch and script (images only from ``data:`` URIs), so the page displays
    offline and nothing in it can reach the network. ``title`` is escaped; ``body`` is
    HTML, so escape any text in it (:func:`html.escape`) before passing it.

    Args:
        title: The page's title.
        body: The page's HTML, in order.
    """
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
    )
    return head + "\n".join(body) + "\n</body>\n</html>\n"


def render_html(data: ReportData, root: Path) -> str:
    """The report as one HTML document that needs nothing else to display.

    Args:
        data: What the report says.
        root: The report's folder; figure paths are relative to it.

    Raises:
        ResultStoreError: A figure cannot be read or is not a PNG file.
    """
    return html_document(data.title, _body(data, root))
