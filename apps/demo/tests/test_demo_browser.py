"""The demo in a real browser: the server process, headless Chromium, no network.

The demo is started as a user starts it (``python -m as_demo``, the ``demo`` command's
module) on a free port, and driven by Playwright through the system's Chromium
(``/usr/bin/chromium``; no browser is ever downloaded). Every request that does not go to
the demo itself is recorded and refused, so a page that needs a CDN, a web font or a hub
fails here. Screenshots go to ``build/screenshots/`` (``AS_DEMO_SCREENSHOTS`` overrides
it), which CI keeps as an artifact.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
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
ROOT = Path(__file__).resolve().parents[3]
# Generous: the demo's first answer loads the model, and the machine may be busy.
DEADLINE_MS = 60_000

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"needs the system Chromium at {CHROMIUM} (CI's .ci/run installs it)",
    ),
    pytest.mark.slow,
]

Draw = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def screenshots_dir() -> Path:
    folder = Path(os.environ.get("AS_DEMO_SCREENSHOTS", ROOT / "build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def digit_png(digits: Any, index: int, draw: Draw, folder: Path) -> Path:
    pil = pytest.importorskip("PIL.Image", reason="PNG files are written with Pillow")
    path = folder / f"digit-{index}-true-{digits.target[index]}.png"
    pil.fromarray(draw(digits.images[index])).save(path)
    return path


class Browser:
    """One page on the demo, with every request that leaves it refused and recorded."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base

    def upload(self, picture: Path) -> None:
        remove = self.page.locator('#upload button[aria-label="Remove Image"]')
        if remove.count():
            remove.click()
        self.page.locator("#upload input[type=file]").set_input_files(str(picture))

    def draw_vertical_stroke(self) -> None:
        """Draw a "1" on the sketchpad with the mouse: one stroke, top to bottom."""
        sketch = self.page.locator("#sketch")
        sketch.locator('button[aria-label="Brush"]').click()
        box = sketch.locator("canvas").last.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y - 90)
        self.page.mouse.down()
        for step in range(1, 19):
            self.page.mouse.move(x, y - 90 + 10 * step)
        self.page.mouse.up()

    def wait_for_request(self, number: int) -> str:
        """Wait until the latency line names request ``number``; return the line."""
        line = self.page.locator("#latency-last")
        line.get_by_text(f"Request {number}:").wait_for(timeout=DEADLINE_MS)
        return str(line.inner_text())

    def label(self) -> str:
        top = self.page.locator('#digit-label [data-testid="label-output-value"]')
        return str(top.inner_text())

    def chart_png(self) -> bytes:
        src = str(self.page.locator("#latency-chart img").get_attribute("src"))
        assert src.startswith("data:image/png;base64,"), src[:80]
        return base64.b64decode(src.split(",", 1)[1])

    def table_text(self) -> str:
        """The latency table's text: the headers, then each row's cells, one a line."""
        return str(self.page.locator("#latency-table").inner_text())


@pytest.fixture
def browser_factory() -> Iterator[Callable[[str], tuple[Browser, list[str]]]]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )

        def open_page(base: str) -> tuple[Browser, list[str]]:
            outside: list[str] = []

            def only_the_demo(route: Any) -> None:
                url = route.request.url
                if url.startswith((base + "/", "data:", "blob:")) or url == base:
                    route.continue_()
                else:
                    outside.append(url)
                    route.abort()

            context = chromium.new_context(viewport={"width": 1280, "height": 1800})
            context.route("**/*", only_the_demo)
            page = context.new_page()
            page.set_default_timeout(DEADLINE_MS)
            page.goto(base, wait_until="load")
            page.locator("#upload input[type=file]").wait_for(state="attached")
            return Browser(page, base), outside

        try:
            yield open_page
        finally:
            chromium.close()


def test_an_uploaded_digit_gets_its_label_and_the_latency_chart_follows_the_requests(
    digits_repo: Path,
    digits: Any,
    draw: Draw,
    unused_port: int,
    tmp_path: Path,
    browser_factory: Callable[[str], tuple[Browser, list[str]]],
    demo_process: Callable[..., Any],
) -> None:
    shots = screenshots_dir()
    pictures = [digit_png(digits, i, draw, tmp_path) for i in range(5)]
    base = f"http://127.0.0.1:{unused_port}"
    with demo_process(unused_port, tmp_path, AS_DEMO__REPO=str(digits_repo)) as proc:
        page, outside = browser_factory(base)
        assert "from the repository" in page.page.locator("#where").inner_text()
        assert "CPU" in page.page.locator("#hardware").inner_text()
        empty_chart = page.chart_png()

        page.upload(pictures[0])
        first = page.wait_for_request(1)
        assert page.label() == str(digits.target[0])
        assert "digits-cnn/2" in first  # the newest version is the default
        page.page.screenshot(path=str(shots / "demo-digit.png"), full_page=True)
        chart_after_one = page.chart_png()
        assert chart_after_one.startswith(PNG) and chart_after_one != empty_chart

        for number, picture in enumerate(pictures[1:], start=2):
            page.upload(picture)
            page.wait_for_request(number)
            assert page.label() == str(digits.target[number - 1])
        chart_after_five = page.chart_png()
        assert chart_after_five != chart_after_one
        assert "digits-cnn/2\n5\n" in page.table_text()  # the version, its 5 requests

        # The other version: its own line on the chart and its own row in the table.
        page.page.locator("#digit-version input").click()
        page.page.get_by_role("option", name="digits-cnn/1 (onnx, digits-cnn)").click()
        page.upload(pictures[0])
        assert "digits-cnn/1" in page.wait_for_request(6)
        table = page.table_text()
        assert 0 < table.index("digits-cnn/2\n5\n") < table.index("digits-cnn/1\n1\n")
        assert page.chart_png() != chart_after_five
        page.page.screenshot(path=str(shots / "demo-latency.png"), full_page=True)

        page.draw_vertical_stroke()
        page.page.get_by_role("button", name="Classify the drawing").click()
        page.wait_for_request(7)
        assert page.label() == "1"
        page.page.screenshot(path=str(shots / "demo-drawing.png"), full_page=True)
        page.page.get_by_role("tab", name="Sentences").click()
        unavailable = page.page.locator("#minilm-status").inner_text()
        assert "not available" in unavailable
        assert outside == [], f"the page asked for something outside the demo: {outside}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_behind_a_model_server_that_starts_later_the_page_shows_its_answers(
    model_server_process: Callable[[int], Any],
    digits: Any,
    draw: Draw,
    unused_port: int,
    tmp_path: Path,
    browser_factory: Callable[[str], tuple[Browser, list[str]]],
    demo_process: Callable[..., Any],
) -> None:
    picture = digit_png(digits, 7, draw, tmp_path)
    base = f"http://127.0.0.1:{unused_port}"
    server_port = free_port()
    server = f"http://127.0.0.1:{server_port}"
    # The demo first, as containers may start: the server is not there yet.
    with demo_process(unused_port, tmp_path, AS_DEMO__SERVER_URL=server):
        page, outside = browser_factory(base)
        status = page.page.locator("#digits-status").inner_text()
        assert f"model server at {server} did not answer" in status
        with model_server_process(server_port):
            page.page.reload()
            page.page.locator("#upload input[type=file]").wait_for(state="attached")
            page.page.wait_for_function(
                "() => document.querySelector('#digit-version input').value"
                ".startsWith('digits-cnn/2')"
            )
            assert page.page.locator("#digits-status").inner_text().strip() == ""
            where = page.page.locator("#where").inner_text()
            assert f"from the model server at {server}" in where
            page.upload(picture)
            assert server in page.wait_for_request(1)
            assert page.label() == str(digits.target[7])
            shot = screenshots_dir() / "demo-behind-server.png"
            page.page.screenshot(path=str(shot), full_page=True)
        assert outside == [], f"the page asked for something outside the demo: {outside}"


@pytest.mark.xdist_group("minilm")
def test_two_sentences_get_their_similarity_in_the_page(
    minilm_repo: Path,
    unused_port: int,
    tmp_path: Path,
    browser_factory: Callable[[str], tuple[Browser, list[str]]],
    demo_process: Callable[..., Any],
) -> None:
    base = f"http://127.0.0.1:{unused_port}"
    with demo_process(unused_port, tmp_path, AS_DEMO__REPO=str(minilm_repo)):
        page, outside = browser_factory(base)
        page.page.get_by_role("tab", name="Sentences").click()
        # Empty once the page's load event is done (while it runs, Gradio shows a timer
        # there, "0.1s"): MiniLM is there, so no message replaces it.
        page.page.wait_for_function(
            "() => document.querySelector('#minilm-status').innerText.trim() === ''",
            timeout=DEADLINE_MS,
        )
        page.page.get_by_label("First sentence").fill("A man is playing a guitar on stage.")
        page.page.get_by_label("Second sentence").fill("Someone plays an instrument for a crowd.")
        page.page.get_by_role("button", name="Compare").click()
        line = page.wait_for_request(1)
        assert "minilm/1" in line
        text = page.page.locator("#similarity").inner_text()
        close = float(text.split("Cosine similarity:")[1].split()[0])
        page.page.get_by_label("Second sentence").fill("Interest rates rose again this year.")
        page.page.get_by_role("button", name="Compare").click()
        page.wait_for_request(2)
        text = page.page.locator("#similarity").inner_text()
        far = float(text.split("Cosine similarity:")[1].split()[0])
        assert 0.3 < close <= 1.0 and far < close - 0.2
        page.page.screenshot(path=str(screenshots_dir() / "demo-sentences.png"), full_page=True)
        assert outside == [], f"the page asked for something outside the demo: {outside}"
