"""A report of functions (``store.add``, the pytest plugin) talks about functions, not models.

Function results are measured for real, by the engine on a fake clock (``FakeDevice``:
the timings are exact, so "4x faster" is a fact, not luck), and stored with
``ResultStore.add``; model results come from ``as_bench.testing.make_result``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from as_bench.engine import MeasureOptions, measure
from as_bench.plots import render_all
from as_bench.plots._data import function_name, result_label
from as_bench.plots._distributions import build_distributions
from as_bench.plots._throughput import build_throughput, has_throughput_curve
from as_bench.report import build_report
from as_bench.report._data import build_data
from as_bench.report._functions import function_insights
from as_bench.results import BenchmarkResult, ResultStore
from as_bench.results._measured import is_function_result
from as_bench.testing import FakeDevice, lognormal_samples, make_measurement, make_result

MODEL_ONLY = (
    "Recommendation",
    "use python",
    "Apple Silicon",
    "highest throughput of the workload",
    "accuracy",
    "output check",
)


def stored_functions(root: Path) -> list[BenchmarkResult]:
    """Two functions of one group (one 4x slower) and one alone, measured and stored."""
    store = ResultStore(root)
    quick = MeasureOptions.quick()
    for name, workload, cost in [
        ("parse/fast", "parse", 100e-6),
        ("parse/slow", "parse", 400e-6),
        ("checksum", None, 50e-6),
    ]:
        m = measure(lambda: None, device=FakeDevice(cost_s=cost), options=quick)
        store.add(m, name=name, workload=workload)
    return store.load()


def model_results() -> list[BenchmarkResult]:
    return [
        make_result(f"mlp/{backend}/cpu/bs{batch}", median_s=median, backend=backend, batch_size=b)
        for backend, batch, b, median in [
            ("torch", 1, 1, 2e-4),
            ("torch", 16, 16, 1e-3),
            ("onnxruntime", 1, 1, 1e-4),
            ("onnxruntime", 16, 16, 6e-4),
        ]
    ]


def test_a_report_of_functions_compares_them_and_leaves_the_model_sections_out(
    tmp_path: Path,
) -> None:
    results = stored_functions(tmp_path / "store")
    assert all(is_function_result(r) for r in results)
    files = build_report(results, tmp_path / "report")
    markdown = files.markdown.read_text(encoding="utf-8")
    page = files.html.read_text(encoding="utf-8")
    for text in (markdown, page):
        assert "as-bench report of functions: checksum, parse" in text
        assert "3 function measurement(s) in 2 group(s)" in text
        assert "Functions: comparisons, noise and convergence" in text
        assert "parse/fast is 4.00x faster" in text
        assert "every measurement&#x27;s IQR is below" in text or (
            "every measurement's IQR is below" in text
        )
        assert "all 3 measurement(s) reached their confidence-interval target" in text
        assert "Results by function" in text and "Results by workload" not in text
        assert "IQR / median" in text
        for absent in MODEL_ONLY:
            assert absent not in text, absent
    # The one that is alone in its group is not compared with anything.
    assert "checksum is" not in markdown and "vs checksum" not in markdown
    # No throughput-against-batch figure of one dot per line; the distributions stay.
    names = {p.name for p in files.images}
    assert "distributions.png" in names and "throughput.png" not in names
    assert "### Throughput" not in markdown
    nav = re.search(r"<nav>(.*?)</nav>", page)
    assert nav is not None
    assert re.findall(r'href="#([a-z-]+)"', nav.group(1)) == [
        "functions",
        "environment",
        "warnings",
        "results",
        "figures",
    ]


def test_noise_convergence_and_ties_of_functions_are_reported() -> None:
    tight = make_result("group/a", median_s=1e-3)
    tied = make_result("group/b", median_s=1.0005e-3)  # within a's confidence interval
    noisy = make_result("group/c", samples_s=lognormal_samples(3e-3, sigma=0.5), workload="group")
    unconverged = make_result(
        "solo",
        measurement=make_measurement(
            lognormal_samples(1e-3),
            converged=False,
            stop_reason="time limit 0.5 s reached",
            warnings=["CPU frequency changed while measuring"],
        ),
    )
    insights = function_insights([tight, tied, noisy, unconverged])
    by_topic: dict[str, list[str]] = {}
    for insight in insights:
        by_topic.setdefault(insight.topic, []).append(f"{insight.level}: {insight.text}")
    assert set(by_topic) == {"comparisons", "noise", "convergence"}
    comparisons = "\n".join(by_topic["comparisons"])
    assert "group/a" in comparisons and "group/b" in comparisons
    assert "statistically tied" in comparisons
    assert re.search(r"group/a is \d+(\.\d+)?x faster", comparisons)
    noise = "\n".join(by_topic["noise"])
    assert re.search(r"warning: 1 measurement\(s\) spread widely.*group/c \d+%", noise)
    assert "warning: 1 measurement(s) recorded warnings" in noise
    assert "solo (time limit 0.5 s reached)" in "\n".join(by_topic["convergence"])
    assert function_insights([]) == []


def test_a_report_of_models_keeps_its_sections_and_a_mixed_one_has_both(
    tmp_path: Path,
) -> None:
    models = model_results()
    data = build_data(models)
    assert data.subject == "models" and data.function_insights == []
    assert data.title == "as-bench report: mlp"
    assert data.recommendations and data.insights
    files = build_report(models, tmp_path / "models")
    assert {p.name for p in files.images} >= {"distributions.png", "throughput.png"}
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "## Recommendation" in markdown and "## Apple Silicon insights" in markdown
    assert "Results by workload" in markdown and "Functions:" not in markdown

    functions = stored_functions(tmp_path / "store")
    mixed = build_data([*models, *functions])
    assert mixed.subject == "models and functions"
    assert {r.workload for r in mixed.recommendations} == {"mlp"}
    assert all(r.choice is None or r.choice.backend != "python" for r in mixed.recommendations)
    assert mixed.function_insights and mixed.insights
    assert "(3 of them functions)" in mixed.overview[0]
    assert mixed.workloads["parse"].headers[0] == "function"
    assert mixed.workloads["mlp"].headers[0] == "backend"
    # The throughput figure keeps the panel of the workload with a curve only.
    assert has_throughput_curve(mixed_results := [*models, *functions])
    assert [ax.get_title() for ax in build_throughput(mixed_results).axes] == [
        "mlp: throughput against batch size"
    ]


def test_function_figures_name_the_functions(tmp_path: Path) -> None:
    results = stored_functions(tmp_path / "store")
    assert not has_throughput_curve(results)
    drawn = render_all(results, tmp_path / "figures")
    assert "distributions" in drawn and "throughput" not in drawn
    fig = build_distributions(results)
    assert "by function and device" in fig.texts[0].get_text() or any(
        "by function and device" in t.get_text() for t in fig.texts
    )
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert ticks == {"fast\ncpu", "slow\ncpu", "checksum\ncpu"}


@pytest.mark.parametrize(
    ("benchmark", "workload", "short"),
    [
        ("tests/test_sort.py::test_sort[heapq]", "test_sort", "test_sort[heapq]"),
        ("words/join", "words", "join"),
        ("words/", "words", "words/"),
        ("checksum", "checksum", "checksum"),
    ],
)
def test_a_function_result_of_the_plugin_is_named_by_its_test(
    benchmark: str, workload: str, short: str
) -> None:
    result = make_result(
        benchmark, median_s=1e-3, workload=workload, tags={"source": "pytest", "test": "x"}
    )
    assert is_function_result(result)
    assert function_name(result) == short
    assert result_label(result) == f"{short}/cpu"
    model = make_result("mlp/torch/cpu/bs1", median_s=1e-3, backend="torch")
    assert not is_function_result(model)
    assert result_label(model) == "torch/cpu bs1"
