"""The pages driven without a browser (Streamlit's AppTest runs the real script in-process).

What a user sees for good input (tables, the recommendation, as-bench's figures, the
gate's verdict) and for bad input: a message where the input is used, while the rest of
the page and the other pages keep working.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import as_logging
from as_dashboard.cli import ENTRY_SCRIPT

TIMEOUT_S = 240  # drawing four figures on a busy 2-core machine


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A function that opens the dashboard with the given settings (environment)."""
    for name in [n for n in os.environ if n.upper().startswith("AS_DASHBOARD__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AS_DASHBOARD__FIGURES_DIR", str(tmp_path / "figures"))

    def open_app(**settings: object) -> AppTest:
        for key, value in settings.items():
            text = value if isinstance(value, str) else json.dumps(value)
            monkeypatch.setenv(f"AS_DASHBOARD__{key.upper()}", text)
        at = AppTest.from_file(str(ENTRY_SCRIPT), default_timeout=TIMEOUT_S)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    try:
        yield open_app
    finally:
        as_logging.reset()  # the page configures logging, as an application does


def texts(elements: Any) -> list[str]:
    return [str(element.value) for element in elements]


def choose(at: AppTest, page: str) -> None:
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_benchmark_page_shows_results_recommendation_and_figures(app: Any, stores: Any) -> None:
    at = app(stores=[str(stores.base), str(stores.slow)])
    assert texts(at.header) == ["Benchmark results"]
    assert "6 of 6 results from 2 place(s)" in texts(at.caption)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 6
    advice = " ".join(texts(at.markdown))
    assert "**mlp**, batch 1: use torch on cpu" in advice
    assert len(at.get("image")) == 4  # distributions, throughput, memory, pareto
    at.multiselect(key="filter_workload").set_value(["mlp"]).run()
    assert "2 of 6 results from 2 place(s)" in texts(at.caption)
    assert len(at.dataframe[0].value) == 2
    assert len(at.get("image")) == 4


def test_bad_places_are_messages_and_the_good_ones_still_show(
    app: Any, stores: Any, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(stores.base, broken)
    first = sorted(broken.glob("*.json"))[0]
    (broken / "20990101T000000000000Z-cut.json").write_text(first.read_text()[:100])
    at = app(stores=[str(tmp_path / "missing"), str(empty), str(broken)])
    errors = texts(at.error)
    assert any("missing: no such file or folder" in e for e in errors), errors
    assert any("empty: not an as-bench result store" in e for e in errors), errors
    warnings = texts(at.warning)
    assert any("1 result file(s) could not be read" in w and "-cut.json" in w for w in warnings)
    assert "4 of 4 results from 1 place(s)" in texts(at.caption)
    choose(at, "Compare runs")
    assert any("A comparison needs two runs" in i for i in texts(at.info))
    choose(at, "Benchmarks")
    assert "4 of 4 results from 1 place(s)" in texts(at.caption)


def test_the_comparison_states_the_gates_verdict_and_refuses_a_bad_threshold(
    app: Any, stores: Any
) -> None:
    at = app(stores=[str(stores.base), str(stores.slow)])
    choose(at, "Compare runs")
    assert any(e.startswith("FAILED: ") for e in texts(at.error)), texts(at.error)
    assert "REGRESSION chain_workload:make/torch/cpu/bs1: " in texts(at.code)[0]
    rows = at.dataframe[0].value
    gates = dict(zip(rows["benchmark"], rows["gate"], strict=True))
    assert gates["chain_workload:make/torch/cpu/bs1"] == "FAIL"
    assert gates["mlp/torch/cpu/bs1"] == "-"  # base only: reported, never gated
    assert len(at.get("image")) == 1  # the comparison figure
    at.text_input(key="compare_fail_on").set_value("median:lots").run()
    assert any(e.startswith("Bad threshold: ") for e in texts(at.error))
    at.text_input(key="compare_fail_on").set_value("").run()
    assert "No thresholds: nothing gated." in texts(at.info)
    # The same run on both sides: nothing regressed.
    at.text_input(key="compare_fail_on").set_value("median:5%").run()
    at.selectbox(key="compare_new").set_value(at.selectbox(key="compare_base").value).run()
    assert any(s.startswith("passed: ") for s in texts(at.success))


def test_an_unreachable_server_is_a_message_and_the_app_keeps_working(
    app: Any, h: Any, stores: Any
) -> None:
    port = h.free_port()  # nothing listens there
    at = app(server_url=f"http://127.0.0.1:{port}", stores=[str(stores.base)], refresh_s="60")
    choose(at, "Live server")
    errors = texts(at.error)
    assert any(f"127.0.0.1:{port}/metrics cannot be reached" in e for e in errors), errors
    at.text_input(key="server_url").set_value("ftp://example.org").run()
    assert any("is not an http:// or https:// URL" in e for e in texts(at.error))
    choose(at, "Studies")
    assert any("Type the storage of a study" in i for i in texts(at.info))
    choose(at, "Benchmarks")
    assert "4 of 4 results from 1 place(s)" in texts(at.caption)


def test_invalid_settings_are_a_message_in_the_page(app: Any) -> None:
    at = app(port="not a port")
    assert any(e.startswith("Invalid settings: ") and "port" in e for e in texts(at.error))


def metric_values(at: AppTest) -> dict[str, str]:
    return {str(m.label): str(m.value) for m in at.metric}


def test_the_live_page_shows_what_the_server_counted_between_readings(
    app: Any, h: Any, http_server: tuple[str, dict[str, tuple[int, bytes]]]
) -> None:
    url, answers = http_server
    metrics = h.FakeServerMetrics()
    metrics.loaded.set(1)
    answers["/metrics"] = (200, metrics.text().encode())
    at = app(server_url=url, refresh_s="600")  # the test reruns the page itself
    choose(at, "Live server")
    first = metric_values(at)
    assert first["requests answered"] == "0" and first["requests/s"] == "-"
    assert first["models loaded"] == "1"
    for reading in range(1, 4):
        metrics.requests.labels("digits", "200").inc(30)
        metrics.requests.labels("digits", "422").inc(reading)
        for _ in range(30):
            metrics.latency.labels("digits", "200").observe(0.003)  # in (2.5 ms, 5 ms]
        metrics.batch.labels("digits").observe(2)
        metrics.queue.labels("digits").set(reading)
        answers["/metrics"] = (200, metrics.text().encode())
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    shown = metric_values(at)
    assert shown["requests answered"] == str(90 + 1 + 2 + 3)
    assert shown["errors (4xx, 5xx)"] == "6"
    assert shown["queue depth"] == "3"
    assert shown["mean batch size"] == "2.0"
    assert shown["requests/s"] not in ("-", "0/s")
    p50 = shown["latency p50"]
    assert p50.endswith("ms") and 2.5 <= float(p50.split()[0]) <= 5.0, p50
    assert len(at.get("vega_lite_chart")) == 4  # rates, latency, batch size, queue depth
    # The server goes away: a message, and the figures read so far stay.
    answers["/metrics"] = (503, b"unavailable")
    at.run()
    assert any("answered HTTP 503" in e for e in texts(at.error))
    assert metric_values(at)["requests answered"] == "96"
