"""The ``demo`` command (also ``python -m as_demo``): start the Gradio demo.

``demo [OPTIONS]`` serves the page. Settings come from ``--config FILE``, ``AS_DEMO__*``
environment variables and the options (which win). SIGTERM stops it as Ctrl-C does: the
server closes and the command exits 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from as_core.cli import CommandLine, version_callback
from as_demo._version import __version__
from as_demo.errors import DemoError

__all__ = ["app", "main"]

logger = logging.getLogger("as_demo")

app = typer.Typer(
    name="demo",
    help="Try as-toolkit's models in a browser: digits, sentence similarity, live latency.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


class UsageError(DemoError):
    """What was typed (an option, a setting) is wrong."""


command_line = CommandLine(app, "demo", package_error=DemoError, usage_errors=(UsageError,))


@app.command()
def demo(
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            help="An as-deploy server (http://host:port) that answers every request; "
            "without it the models run in this process.",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="The model repository to run from (no --server-url); the digits model "
            "as-deploy ships when left out.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="Interface to listen on (default 127.0.0.1).", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help="TCP port (default 7860).", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (YAML, JSON or TOML); AS_DEMO__* variables override it.",
            show_default=False,
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Also write JSON-lines logs here.", show_default=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback("demo", __version__),
            is_eager=True,
            help="Show the version.",
        ),
    ] = False,
) -> None:
    """Start the demo's web page (Gradio) and serve it until Ctrl-C or SIGTERM."""
    overrides: dict[str, Any] = {}
    for key, value in (
        ("server_url", server_url),
        ("repo", repo),
        ("host", host),
        ("port", port),
        ("log_dir", log_dir),
    ):
        if value is not None:
            overrides[key] = value
    _run(_settings(config, overrides))


def _settings(config: Path | None, overrides: dict[str, Any]) -> Any:
    from as_config import AsConfigError, load_settings
    from as_demo.settings import DemoSettings

    try:
        return load_settings(DemoSettings, config, overrides=overrides)
    except AsConfigError as exc:
        raise UsageError(str(exc)) from exc


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _run(settings: Any) -> None:
    import as_logging
    from as_demo.app import offline_environment

    as_logging.configure(
        settings.log_level.upper(), log_dir=settings.log_dir, rich_tracebacks=command_line.debug
    )
    offline_environment()  # before Gradio is imported
    # httpx logs every request Gradio makes to itself at start; only its problems matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from as_bench.probe import probe, summary_rows
    from as_demo.app import build_demo, serve
    from as_demo.backends import make_backend
    from as_demo.latency import LatencyLog
    from as_demo.service import DemoService

    backend = make_backend(settings.server_url, settings.repo, timeout_s=settings.request_timeout_s)
    try:
        service = DemoService(
            backend,
            digits_model=settings.digits_model,
            minilm_model=settings.minilm_model,
            latency=LatencyLog(settings.latency_window),
        )
        page = build_demo(service, summary_rows(probe()))
        logger.info("demo: answers come %s", backend.where)
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            serve(page, settings.host, settings.port)
        except KeyboardInterrupt:
            pass
        finally:
            page.close()
            logger.info("demo: stopped")
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> None:
    """Run the command line: the ``demo`` console script and ``python -m as_demo``."""
    command_line.run(sys.argv[1:] if argv is None else argv)
