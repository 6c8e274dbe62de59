"""The Gradio page: a digits tab, a sentences tab, the latency chart and the hardware.

:func:`build_demo` lays the page out over a :class:`~as_demo.service.DemoService`;
:func:`serve` starts it. Nothing on the page is fetched from outside the demo's own
server: the theme uses the system's fonts (no web fonts), analytics and the update check
are off, there is no share link and no server-side rendering (:func:`offline_environment`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from as_demo.errors import DemoError
from as_demo.latency import Sample
from as_demo.service import DemoService

if TYPE_CHECKING:
    import gradio as gr
    from matplotlib.figure import Figure

__all__ = ["build_demo", "offline_environment", "serve", "theme"]

logger = logging.getLogger(__name__)

#: Environment that keeps Gradio and the Hugging Face libraries from calling home.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
SUMMARY_HEADERS = ["version", "requests", "p50 (ms)", "p99 (ms)", "last (ms)"]
_SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif")
_SYSTEM_MONO = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


def offline_environment() -> None:
    """Set :data:`OFFLINE_ENV` (values already set by the user are kept); before Gradio loads."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def theme() -> gr.themes.Base:
    """Gradio's default theme with the system's fonts only: no font is downloaded."""
    import gradio as gr

    return gr.themes.Default(font=list(_SYSTEM_FONTS), font_mono=list(_SYSTEM_MONO))


def _latency_text(sample: Sample, window: int, where: str) -> str:
    return (
        f"Request {sample.index}: **{sample.ms:.2f} ms** ({sample.key}, {where}); "
        f"p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms over its latest requests "
        f"(up to {window})"
    )


def _enlarged(image: npt.NDArray[np.float32], factor: int = 16) -> npt.NDArray[np.uint8]:
    """The 8x8 digits image (0..16, ink) as dark ink on white, ``factor`` times larger."""
    gray = np.round(255 * (1.0 - image / 16.0)).astype(np.uint8)
    return np.kron(gray, np.ones((factor, factor), dtype=np.uint8))


def _sketch_image(value: Any) -> Any:
    """The picture in a Sketchpad's value (its composite, or the one layer drawn)."""
    if isinstance(value, dict):
        composite = value.get("composite")
        if composite is not None:
            return composite
        layers = [layer for layer in value.get("layers") or () if layer is not None]
        if layers:
            return layers[-1]
        return value.get("background")
    return value


def _version_choices(service: DemoService, name: str) -> list[tuple[str, str]]:
    choices = []
    for version in service.versions(name):
        try:
            title = service.backend.describe(name, version).title
        except DemoError as exc:
            title = f"{name}/{version} (cannot run: {exc})"
        choices.append((title, version))
    return choices


class _Handlers:
    """The page's event handlers: each answers with its outputs, then the latency's."""

    def __init__(self, service: DemoService) -> None:
        self.service = service
        self.log = service.latency
        self.where = service.backend.where

    def summary(self) -> list[list[Any]]:
        return [
            [s.key, s.requests, round(s.p50_ms, 3), round(s.p99_ms, 3), round(s.last_ms, 3)]
            for s in self.log.summaries()
        ]

    def chart(self) -> Figure:
        return self.log.figure()

    def _latency(self, sample: Sample) -> tuple[Any, ...]:
        return (_latency_text(sample, self.log.window, self.where), self.chart(), self.summary())

    @staticmethod
    def _refused(exc: DemoError) -> Exception:
        import gradio as gr

        logger.warning("request refused: %s", exc)
        return gr.Error(str(exc), print_exception=False)

    def digit_versions(self, current: str | None) -> tuple[Any, str]:
        import gradio as gr

        name = self.service.digits_model
        choices, selected, problem = _versions(self.service, name, current)
        return gr.update(choices=choices, value=selected), _digits_status(problem)

    def minilm_versions(self, current: str | None) -> tuple[Any, str, Any]:
        import gradio as gr

        problem = self.service.minilm_problem()
        choices: list[tuple[str, str]] = []
        selected = None
        if problem is None:
            choices, selected, problem = _versions(self.service, self.service.minilm_model, current)
        return (
            gr.update(choices=choices, value=selected),
            _minilm_status(problem),
            gr.update(interactive=not problem),
        )

    def classify(self, picture: Any, version: str | None) -> tuple[Any, ...]:
        if picture is None:
            raise self._refused(DemoError("draw or upload a digit first"))
        if not version:
            raise self._refused(DemoError("choose a model version"))
        try:
            answer = self.service.classify_digit(picture, version)
        except DemoError as exc:
            raise self._refused(exc) from exc
        logger.info(
            "digit %s (p=%.3f) by %s in %.2f ms",
            answer.label,
            answer.probabilities[answer.label],
            answer.latency.key,
            answer.latency.ms,
        )
        return (answer.probabilities, _enlarged(answer.image), *self._latency(answer.latency))

    def classify_drawing(self, value: Any, version: str | None) -> tuple[Any, ...]:
        return self.classify(_sketch_image(value), version)

    def compare(self, first: str, second: str, version: str | None) -> tuple[Any, ...]:
        if not version:
            raise self._refused(DemoError("choose a model version"))
        try:
            answer = self.service.similarity(first, second, version)
        except DemoError as exc:
            raise self._refused(exc) from exc
        note = " (a sentence was cut to the model's token length)" if answer.truncated else ""
        logger.info(
            "similarity %.4f by %s in %.2f ms",
            answer.cosine,
            answer.latency.key,
            answer.latency.ms,
        )
        text = f"Cosine similarity: **{answer.cosine:.4f}**{note}"
        return (text, *self._latency(answer.latency))


def build_demo(service: DemoService, hardware: Sequence[tuple[str, str]]) -> gr.Blocks:
    """Lay the page out.

    Args:
        service: The demo's logic over its backend.
        hardware: ``(label, value)`` rows describing the machine (as-bench's probe).
    """
    import gradio as gr

    handlers = _Handlers(service)
    where = service.backend.where

    demo: gr.Blocks
    with gr.Blocks(title="as-toolkit demo", analytics_enabled=False) as demo:
        # Made first (every request updates them), shown below the tabs.
        latency_outputs = [
            gr.Markdown("No request yet.", elem_id="latency-last", render=False),
            gr.Plot(
                value=handlers.chart(),
                label="Latency per request",
                format="png",
                elem_id="latency-chart",
                render=False,
            ),
            gr.Dataframe(
                value=handlers.summary() or None,
                headers=SUMMARY_HEADERS,
                label="By version",
                interactive=False,
                elem_id="latency-table",
                render=False,
            ),
        ]
        gr.Markdown(f"# as-toolkit demo\nAnswers come {where}.", elem_id="where")
        with gr.Tab("Digits"):
            digit_version, digit_status = _digits_tab(gr, handlers, latency_outputs)
        with gr.Tab("Sentences"):
            minilm_version, minilm_status, compare = _sentences_tab(gr, handlers, latency_outputs)
        # Each page load asks again: versions added since, or a server that came up later.
        demo.load(
            handlers.digit_versions, inputs=[digit_version], outputs=[digit_version, digit_status]
        )
        demo.load(
            handlers.minilm_versions,
            inputs=[minilm_version],
            outputs=[minilm_version, minilm_status, compare],
        )
        gr.Markdown("## Latency")
        for component in latency_outputs:
            component.render()  # type: ignore[no-untyped-call]
        with gr.Accordion("Hardware: as-bench's probe of the machine the demo runs on"):
            rows = "\n".join(f"| {label} | {value} |" for label, value in hardware)
            gr.Markdown(f"| what | value |\n|---|---|\n{rows}", elem_id="hardware")
    return demo


def _versions(
    service: DemoService, name: str, current: str | None
) -> tuple[list[tuple[str, str]], str | None, str]:
    """The version list of ``name``, the one to select, and a message when there is none."""
    try:
        choices = _version_choices(service, name)
    except DemoError as exc:
        return [], None, str(exc)
    values = [value for _, value in choices]
    return choices, current if current in values else values[0], ""


def _digits_tab(gr: Any, handlers: _Handlers, latency_outputs: list[Any]) -> tuple[Any, Any]:
    service = handlers.service
    choices, selected, problem = _versions(service, service.digits_model, None)
    status = gr.Markdown(_digits_status(problem), elem_id="digits-status")
    with gr.Row():
        with gr.Column():
            version = gr.Dropdown(
                choices=choices, value=selected, label="Model version", elem_id="digit-version"
            )
            sketch = gr.Sketchpad(
                label="Draw a digit", type="numpy", canvas_size=(280, 280), elem_id="sketch"
            )
            draw_button = gr.Button("Classify the drawing", variant="primary")
            upload = gr.Image(
                label="Or upload a picture of a digit",
                type="numpy",
                sources=["upload"],
                image_mode="RGBA",
                elem_id="upload",
            )
        with gr.Column():
            label = gr.Label(num_top_classes=10, label="Prediction", elem_id="digit-label")
            seen = gr.Image(
                label="What the model sees (8x8)",
                interactive=False,
                height=200,
                elem_id="digit-seen",
            )
    outputs = [label, seen, *latency_outputs]
    draw_button.click(handlers.classify_drawing, inputs=[sketch, version], outputs=outputs)
    upload.upload(handlers.classify, inputs=[upload, version], outputs=outputs)
    return version, status


def _digits_status(problem: str) -> str:
    return f"**Digits are not available now.** {problem}" if problem else ""


def _minilm_status(problem: str | None) -> str:
    return f"**Sentence similarity is not available here.** {problem}" if problem else ""


def _sentences_tab(
    gr: Any, handlers: _Handlers, latency_outputs: list[Any]
) -> tuple[Any, Any, Any]:
    service = handlers.service
    problem = service.minilm_problem()
    choices: list[tuple[str, str]] = []
    selected = None
    if problem is None:
        choices, selected, problem = _versions(service, service.minilm_model, None)
    status = gr.Markdown(_minilm_status(problem), elem_id="minilm-status")
    version = gr.Dropdown(
        choices=choices, value=selected, label="Model version", elem_id="minilm-version"
    )
    first = gr.Textbox(label="First sentence", value="A man is playing a guitar.")
    second = gr.Textbox(label="Second sentence", value="Someone plays an instrument on stage.")
    button = gr.Button("Compare", variant="primary", interactive=not problem)
    result = gr.Markdown(elem_id="similarity")
    outputs = [result, *latency_outputs]
    button.click(handlers.compare, inputs=[first, second, version], outputs=outputs)
    return version, status, button


def serve(demo: gr.Blocks, host: str, port: int) -> None:
    """Serve the page until interrupted (Ctrl-C, or SIGTERM where the CLI maps it).

    Raises:
        DemoError: The port cannot be listened on (in use, not allowed).
    """
    demo.queue(default_concurrency_limit=4)
    try:
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            theme=theme(),
            share=False,
            show_error=True,
            quiet=True,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            footer_links=[],
            inbrowser=False,
            prevent_thread_lock=True,
        )
    except OSError as exc:
        raise DemoError(f"cannot serve the demo on {host}:{port}: {exc}") from exc
    logger.info("demo: serving on %s", url)
    demo.block_thread()
