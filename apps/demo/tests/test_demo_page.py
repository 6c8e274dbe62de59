"""The page's handlers and layout, in process (the browser tests drive the real server)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from as_demo.app import _Handlers, _sketch_image, theme
from as_demo.backends import HttpBackend, LocalBackend
from as_demo.service import DemoService

gr = pytest.importorskip("gradio", reason="the page is made with Gradio")

Draw = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


@pytest.fixture
def handlers(digits_repo: Path) -> Iterator[_Handlers]:
    service = DemoService(LocalBackend(digits_repo))
    yield _Handlers(service)
    service.backend.close()


def test_a_picture_gets_probabilities_the_8x8_view_and_the_latency(
    handlers: _Handlers, digits: Any, draw: Draw
) -> None:
    probabilities, seen, text, figure, table = handlers.classify(draw(digits.images[4]), "1")
    assert max(probabilities, key=probabilities.__getitem__) == str(digits.target[4])
    assert seen.shape == (128, 128) and seen.dtype == np.uint8
    assert text.startswith("Request 1: **") and "digits-cnn/1, in this process" in text
    assert [line.get_label() for line in figure.axes[0].get_lines()] == [
        "digits-cnn/1 p50",
        "digits-cnn/1 p99",
    ]
    assert table[0][:2] == ["digits-cnn/1", 1]


def test_a_drawing_is_read_from_the_sketchpads_composite_or_its_layer(
    handlers: _Handlers, digits: Any, draw: Draw
) -> None:
    ink = 255 - draw(digits.images[1])
    layer = np.zeros((*ink.shape, 4), dtype=np.uint8)
    layer[:, :, 3] = ink  # black strokes on a transparent layer
    value = {"background": None, "layers": [layer], "composite": None}
    assert _sketch_image(value) is layer
    probabilities = handlers.classify_drawing(value, "2")[0]
    assert max(probabilities, key=probabilities.__getitem__) == str(digits.target[1])
    assert _sketch_image({"composite": layer, "layers": []}) is layer
    assert _sketch_image(None) is None


def test_what_cannot_be_answered_is_a_message_on_the_page(handlers: _Handlers) -> None:
    with pytest.raises(gr.Error, match="draw or upload a digit first"):
        handlers.classify(None, "1")
    with pytest.raises(gr.Error, match="holds no stroke"):
        handlers.classify(np.full((50, 50), 255, dtype=np.uint8), "1")
    with pytest.raises(gr.Error, match="choose a model version"):
        handlers.classify(np.zeros((8, 8), dtype=np.uint8), None)
    with pytest.raises(gr.Error, match="choose a model version"):
        handlers.compare("a", "b", None)
    assert handlers.log.count == 0


def test_each_page_load_lists_the_versions_and_keeps_the_chosen_one(
    handlers: _Handlers, unused_port: int
) -> None:
    update, status = handlers.digit_versions("1")
    assert update["value"] == "1" and status == ""
    assert [value for _, value in update["choices"]] == ["2", "1"]
    assert handlers.digit_versions(None)[0]["value"] == "2"
    version, minilm_status, button = handlers.minilm_versions(None)
    assert version["choices"] == [] and "not available here" in minilm_status
    assert button["interactive"] is False

    down = _Handlers(DemoService(HttpBackend(f"http://127.0.0.1:{unused_port}", timeout_s=2)))
    update, status = down.digit_versions(None)
    assert update["choices"] == [] and "did not answer" in status
    down.service.backend.close()


# The layout itself is checked in the browser (test_demo_browser.py): building Gradio
# Blocks in this process leaves an event loop of Gradio's unclosed.
def test_the_theme_uses_system_fonts_only() -> None:
    css: str = theme()._get_theme_css()  # type: ignore[no-untyped-call]  # the page's <style>
    assert "--font: ui-sans-serif, system-ui" in css
    assert "@import" not in css and "@font-face" not in css
    assert re.findall(r"url\((?!\"data:)", css) == []  # only inline data, nothing to fetch
