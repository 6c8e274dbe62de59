"""Reports of benchmark results: Markdown and one self-contained HTML file.

:func:`build_report` writes ``report.md`` and ``report.html`` (figures embedded, nothing
fetched when opened) with the environment, noise warnings, a table per workload, the
comparison with a baseline, a recommendation per workload and batch size, and Apple
Silicon insights; of functions (the pytest plugin's results, ``ResultStore.add``'s) it
says instead which of a group is faster, how noisy each was and whether it converged::

    from as_bench.report import build_report
    from as_bench.results import read_result_objects

    files = build_report(read_result_objects("as-bench-results"), Path("report"))

:func:`recommend`, :func:`apple_silicon_insights` and :func:`function_insights` are the
report's reasoning on their own, for other tools; :class:`Table`, :func:`html_table`,
:func:`markdown_table`, :func:`escape_markdown`, :func:`png_data_uri` and
:func:`html_document` are its building blocks, for other tools' reports in the same
style (one self-contained page, nothing fetched). Importing this package imports neither
matplotlib nor polars; the figures are drawn when a report is built.
"""

from as_bench.report._build import ReportFiles, build_report
from as_bench.report._data import Table
from as_bench.report._functions import function_insights
from as_bench.report._html import html_document, html_table, png_data_uri
from as_bench.report._insights import Insight, apple_silicon_insights
from as_bench.report._markdown import escape_markdown, markdown_table
from as_bench.report._recommend import ACCURACY_TOLERANCE, Candidate, Recommendation, recommend

__all__ = [
    "ACCURACY_TOLERANCE",
    "Candidate",
    "Insight",
    "Recommendation",
    "ReportFiles",
    "Table",
    "apple_silicon_insights",
    "build_report",
    "escape_markdown",
    "function_insights",
    "html_document",
    "html_table",
    "markdown_table",
    "png_data_uri",
    "recommend",
]
