"""The HTML report in a real browser: every image loads, offline, with a size.

The report is built from results the real runner measured (mlp on torch and ONNX
Runtime), opened from disk in headless Chromium (the system's ``/usr/bin/chromium``,
driven by Playwright; no browser is ever downloaded) with every network request blocked,
and screenshotted. Set ``AS_BENCH_REPORT_SCREENSHOT`` to a path to keep a copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import as_logging
from as_bench.cli import main
from as_bench.report import build_report
from as_bench.results import read_result_objects

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

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"needs the system Chromium at {CHROMIUM} (CI's .ci/run installs it)",
)


def measure_real_results(store: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the mlp workload needs the torch extra")
    pytest.importorskip("onnxruntime", reason="these runs compare torch with onnxruntime")
    for name in list(os.environ):
        if name.upper().startswith("AS_BENCH__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AS_BENCH_CACHE_DIR", str(cache))
    monkeypatch.setenv("AS_BENCH__MEASURE__MIN_SAMPLES", "3")
    argv = ["run", "-w", "mlp", "-b", "torch", "-b", "onnxruntime", "-B", "1", "-B", "8"]
    argv += ["--max-time", "0.05", "-o", str(store)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        as_logging.reset()  # the CLI configures logging, as an application does; undo it
    assert exit_info.value.code == 0


def test_every_image_of_the_html_report_loads_in_chromium(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    store = tmp_path / "results"
    measure_real_results(store, tmp_path_factory.getbasetemp() / "as-bench-cache", monkeypatch)
    files = build_report(read_result_objects(store), tmp_path / "report")
    assert len(files.images) >= 3  # distributions, throughput, memory, pareto here

    requests: list[str] = []
    screenshot = tmp_path / "report.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(files.html.as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images).map(img => ({
                    complete: img.complete,
                    width: img.naturalWidth,
                    height: img.naturalHeight,
                    shown: img.getBoundingClientRect().width,
                    alt: img.alt,
                }))"""
            )
            page.screenshot(path=str(screenshot), full_page=True)
            title = page.title()
        finally:
            browser.close()

    assert len(images) == len(files.images)
    for image in images:
        assert image["complete"], image
        assert image["width"] > 0 and image["height"] > 0, image
        assert image["shown"] > 0, image
    # Only the file itself was requested: data URIs are not fetched over any network.
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert title.startswith("as-bench report")
    data = screenshot.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    keep = os.environ.get("AS_BENCH_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)
