"""The dashboard in a real browser, started as a user starts it.

``dashboard`` runs as a server process on a free port with two stores written by
``as-bench run`` (conftest: a baseline, and a run whose chain workload does twenty times
the work under the same benchmark names) and the URL of a real ``as-deploy serve``
(the embedded digits model). Headless Chromium (the system's ``/usr/bin/chromium``,
driven by Playwright; no browser is downloaded) opens it with every request to another
host refused and recorded. The tests see the as-bench figures load as images with a
size, the comparison flag the regression with the gate's verdict, and the live figures
change while a load runs against the server. Screenshots go to ``build/screenshots/``
(CI keeps them).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG = b"\x89PNG\r\n\x1a\n"
#: Generous: a busy 2-core machine draws figures and starts servers slowly.
DEADLINE_MS = 180_000

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"needs the system Chromium at {CHROMIUM} (CI's .ci/run installs it)",
    ),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def model_server(h: Any, start_process: Any) -> str:
    """``as-deploy serve`` of its embedded digits model on a free port; its URL.

    One server and one dashboard serve the module's tests (each opens its own page, a
    session of its own); only the live test sends predict requests.
    """
    port = h.free_port()
    server = start_process(
        [*h.script("as-deploy", "as_deploy"), "serve", "--port", str(port)],
        h.clean_env(AS_DEPLOY__DRAIN_GRACE_S="0"),
    )
    url = f"http://127.0.0.1:{port}"
    server.wait_http(url + "/ready")
    return url


@pytest.fixture(scope="module")
def dashboard(h: Any, stores: Any, model_server: str, start_process: Any) -> str:
    """``dashboard`` with both stores and the model server's URL; its URL."""
    port = h.free_port()
    argv = [*h.script("dashboard", "as_dashboard"), "--port", str(port)]
    argv += ["--store", str(stores.base), "--store", str(stores.slow)]
    argv += ["--server-url", model_server]
    app = start_process(argv, h.clean_env(AS_DASHBOARD__REFRESH_S="1"))
    url = f"http://127.0.0.1:{port}"
    app.wait_http(url + "/_stcore/health")
    return url


@contextmanager
def browser_page(viewport: tuple[int, int] = (1400, 2400)) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page that may reach 127.0.0.1 only; the other URLs it asked for."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    elsewhere: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]", url) or url.startswith(
            ("data:", "blob:")
        ):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.route("**/*", only_local)
            page = context.new_page()
            page.set_default_timeout(DEADLINE_MS)
            yield page, elsewhere
        finally:
            browser.close()


def screenshot(page: Any, h: Any, name: str) -> None:
    h.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = h.SCREENSHOTS / name
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


IMAGES = """() => Array.from(document.querySelectorAll('[data-testid="stMain"] img'))
    .map(img => ({complete: img.complete, width: img.naturalWidth,
                  height: img.naturalHeight, shown: img.getBoundingClientRect().width,
                  src: img.src}))"""

METRICS = """() => Object.fromEntries(
    Array.from(document.querySelectorAll('[data-testid="stMetric"]')).map(m => [
        m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
        m.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))"""


def choose_page(page: Any, name: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text(name, exact=True).click()


def test_the_benchmark_page_shows_the_stores_tables_recommendation_and_figures(
    dashboard: str, h: Any
) -> None:
    with browser_page() as (page, elsewhere):
        page.goto(dashboard)
        page.get_by_text("Benchmark results").wait_for()
        # distributions, throughput, memory and pareto: every one loaded, with a size.
        page.wait_for_function(
            f"() => ({IMAGES})().filter(i => i.complete && i.width > 0).length >= 4",
            timeout=DEADLINE_MS,
        )
        images = page.evaluate(IMAGES)
        assert len(images) == 4, images
        for image in images:
            assert image["width"] > 200 and image["height"] > 200, image
            assert image["shown"] > 0, image
        assert page.get_by_text("6 of 6 results from 2 place(s)").is_visible()
        assert page.locator('[data-testid="stDataFrame"]').first.is_visible()
        assert page.get_by_text(re.compile(r"batch 1: use torch on cpu")).first.is_visible()
        screenshot(page, h, "dashboard-benchmarks.png")
    assert elsewhere == []


def test_the_comparison_flags_the_slowed_run_with_the_gates_verdict(dashboard: str, h: Any) -> None:
    with browser_page() as (page, elsewhere):
        page.goto(dashboard)
        page.get_by_text("Benchmark results").wait_for()
        choose_page(page, "Compare runs")
        page.get_by_text("FAILED: ").wait_for()
        verdict = page.locator('[data-testid="stCode"]').inner_text()
        assert "REGRESSION chain_workload:make/torch/cpu/bs1: " in verdict
        # "> 5%", or "> median:5%" when a busy run is judged on its lower decile.
        assert re.search(r"> (median:)?5%", verdict), verdict
        # The comparison figure: as-bench's bars of the change, loaded with a size.
        page.wait_for_function(
            f"() => ({IMAGES})().some(i => i.complete && i.width > 0)", timeout=DEADLINE_MS
        )
        assert page.locator('[data-testid="stDataFrame"]').first.is_visible()
        screenshot(page, h, "dashboard-compare.png")
    assert elsewhere == []


def load(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Predict requests against the digits model until ``stop``; every tenth is malformed."""
    import httpx

    rng = np.random.default_rng(0)
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            count = len(sent)
            shape = (1, 8, 8) if count % 10 == 9 else (1, 1, 8, 8)  # the wrong shape: a 422
            body = {"inputs": {"input": rng.random(shape).round(3).tolist()}}
            sent.append(client.post("/v1/models/digits-cnn/predict", json=body).status_code)


def read_number(text: str) -> float:
    return float(text.replace(",", "").split("/")[0].split()[0])


def test_live_server_figures_change_while_a_load_runs(
    dashboard: str, model_server: str, h: Any
) -> None:
    with browser_page(viewport=(1400, 1800)) as (page, elsewhere):
        page.goto(dashboard)
        page.get_by_text("Benchmark results").wait_for()
        choose_page(page, "Live server")
        page.wait_for_function(
            f"() => ({METRICS})()['requests answered'] !== undefined", timeout=DEADLINE_MS
        )
        before = page.evaluate(METRICS)
        assert before["requests answered"] == "0", before
        stop = threading.Event()
        statuses: list[int] = []
        sender = threading.Thread(target=load, args=(model_server, stop, statuses))
        sender.start()
        try:
            # The page refreshes every second: wait until it shows the load.
            # The figures of one refresh (an interval with no inference shows its mean
            # batch size as "-": the condition waits for one that had some).
            shown = page.wait_for_function(
                f"""() => {{
                    const m = ({METRICS})();
                    const rate = parseFloat((m['requests/s'] || '-').replace(/,/g, ''));
                    const ok = parseFloat(m['requests answered']) >= 20
                        && parseFloat(m['errors (4xx, 5xx)']) >= 1
                        && rate > 0 && m['latency p50'] !== '-'
                        && m['mean batch size'] !== '-';
                    return ok ? m : false;
                }}""",
                timeout=DEADLINE_MS,
            )
            during = shown.json_value()
            # The charts appear once a few readings are in.
            page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
            screenshot(page, h, "dashboard-live.png")
        finally:
            stop.set()
            sender.join(timeout=60)
        assert 200 in statuses and 422 in statuses
        assert read_number(during["requests answered"]) >= 20
        assert read_number(during["requests/s"]) > 0
        assert read_number(during["mean batch size"]) >= 1
        # After the load: the total settles at what the server answered.
        answered = len(statuses)
        page.wait_for_function(
            f"() => parseFloat(({METRICS})()['requests answered']) === {answered}",
            timeout=DEADLINE_MS,
        )
    assert elsewhere == []
