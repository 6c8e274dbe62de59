"""The ``as-deploy serve`` command: the model server under uvicorn.

Settings come from ``--config FILE``, ``AS_DEPLOY__*`` environment variables and the
options (which win). With no ``--repo`` it serves the default model shipped in the
package. SIGTERM stops it gracefully: ``/ready`` turns 503 at once while everything is
still accepted and served for ``drain_grace_s`` (a load balancer sees it and sends no
more); then it stops accepting, every request it took in gets its answer (up to
``graceful_timeout_s``), queued batches run, and it exits 0. Ctrl-C does the same without
the grace period. The connections are handled by
:mod:`as_deploy.server._protocol` (deadlines for slow clients, ``TCP_NODELAY``).
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from as_deploy.exceptions import UsageError

if TYPE_CHECKING:
    from as_deploy.settings import ServerSettings

__all__ = ["register", "serve"]

_LEVELS = ("debug", "info", "warning", "error", "critical")


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("serve")(serve)


def serve(
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="The model repository to serve; the default model shipped in the package "
            "when left out.",
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
            "--port", min=0, max=65535, help="TCP port (default 8000).", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (YAML, JSON or TOML); AS_DEPLOY__* variables override it.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help=f"One of {', '.join(_LEVELS)} (default info).",
            show_default=False,
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Also write JSON-lines logs here.", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes behind the one port, each with its own copy of the "
            "models (default 1).",
            show_default=False,
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            help="HTTP parser: httptools (on uvloop), h11, or auto (default: httptools and "
            "uvloop when installed, else h11).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the models of a repository over HTTP (OpenAPI at /docs)."""
    overrides: dict[str, Any] = {}
    if http is not None and http not in ("auto", "httptools", "h11"):
        raise UsageError(f"--http {http!r} is not a parser", hint="use auto, httptools or h11")
    pairs = (("repo", repo), ("host", host), ("port", port), ("workers", workers), ("http", http))
    for key, value in pairs:
        if value is not None:
            overrides[key] = value
    if log_level is not None:
        if log_level.lower() not in _LEVELS:
            raise UsageError(
                f"--log-level {log_level!r} is not a level", hint=f"use one of {', '.join(_LEVELS)}"
            )
        overrides["log_level"] = log_level.lower()
    settings = _load_settings(config, overrides)
    _configure_logging(settings, log_dir)
    _run(settings, log_dir)


def _load_settings(config: Path | None, overrides: dict[str, Any]) -> ServerSettings:
    from as_config import AsConfigError, load_settings
    from as_deploy.settings import ServerSettings

    try:
        return load_settings(ServerSettings, config, overrides=overrides)
    except AsConfigError as exc:
        # A bad file or value is a usage error (exit 2); the message names the file and key.
        raise UsageError(str(exc), hint=exc.hint or "fix the setting and run again") from exc


def _configure_logging(
    settings: ServerSettings, log_dir: Path | None, *, filename: str | None = None
) -> None:
    import as_logging
    from as_deploy.cli._common import command_line

    level = settings.log_level.upper()
    if filename is None:
        as_logging.configure(level, log_dir=log_dir, rich_tracebacks=command_line.debug)
    else:
        as_logging.configure(
            level, log_dir=log_dir, rich_tracebacks=command_line.debug, filename=filename
        )
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_drop_color_message)


def _drop_color_message(record: logging.LogRecord) -> bool:
    # uvicorn attaches an ANSI-coloured copy of some messages; it is noise in our output.
    record.__dict__.pop("color_message", None)
    return True


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    from as_deploy.exceptions import ListenError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections from a socket that says it is TCP. With it on, every response on a
    # kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # worker processes: each listens on a socket of its own on the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"could not listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _run(settings: ServerSettings, log_dir: Path | None) -> None:
    from as_deploy.cli._common import stdout
    from as_deploy.repository import ModelRepository
    from as_deploy.server import default_repository

    root = settings.repo or default_repository()
    if not root.is_dir():
        if settings.repo is None:
            raise UsageError(
                f"the default model is not installed: {root} does not exist",
                hint="pass --repo DIR, or reinstall as-deploy",
            )
        raise UsageError(
            f"the model repository {root} does not exist or is not a folder",
            hint="pass --repo with the folder that holds <name>/<version>/manifest.json",
        )
    models = ModelRepository(root).list_models()
    if settings.workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError(
            "--workers needs SO_REUSEPORT, which this system does not have",
            hint="run one process per port, or leave out --workers",
        )
    # With workers this socket only holds the port; each worker listens on its own.
    sock = _bind(settings.host, settings.port, reuse_port=settings.workers > 1)
    port = sock.getsockname()[1]
    shown = ", ".join(f"{n}/{v}" for n, v in models) or "none yet"
    where = f"[{settings.host}]" if ":" in settings.host else settings.host
    many = f"; {settings.workers} workers" if settings.workers > 1 else ""
    stdout.print(
        f"as-deploy serve: http://{where}:{port} (models: {shown}; repository {root}{many})"
    )
    try:
        if settings.workers > 1:
            from as_deploy.cli._workers import supervise

            received = [supervise(settings, sock, log_dir=log_dir)]
        else:
            received = _serve(settings, sock)
    finally:
        sock.close()
    if received:
        stdout.print(f"as-deploy serve: stopped on {signal.Signals(received[0]).name}")


def _stack(
    http: Literal["auto", "httptools", "h11"], fast: bool
) -> tuple[Literal["httptools", "h11"], Literal["uvloop", "asyncio"]]:
    """The HTTP parser and event loop for the ``http`` setting (``fast``: both installed)."""
    if http == "h11" or (http == "auto" and not fast):
        return "h11", "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "httptools", "asyncio"
    return "httptools", "uvloop"


def _serve(settings: ServerSettings, sock: socket.socket) -> list[int]:
    """Serve on the listening ``sock`` until a signal stops it; return the signals."""
    import uvicorn

    from as_deploy.server import ServerState, create_app, default_repository
    from as_deploy.server._protocol import DrainingServer, fast_stack_available, protocol_class

    app = create_app(settings, repo=settings.repo or default_repository())
    state: ServerState = app.state.server

    def _drain() -> None:
        state.draining = True  # /ready answers 503 from the signal on

    http, loop = _stack(settings.http, fast_stack_available())
    logging.getLogger("as_deploy.server").info("HTTP/1.1 on %s, event loop %s", http, loop)
    config = uvicorn.Config(
        app,
        # uvicorn's protocol with deadlines, JSON errors and draining (_protocol).
        http=protocol_class(state, http),
        loop=loop,
        log_config=None,  # as-logging's handlers, not uvicorn's
        log_level=settings.log_level,
        access_log=False,  # the app logs structured access lines itself
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        lifespan="on",
        server_header=False,
    )
    received: list[int] = []

    def _remember(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    # What exists now (modules, the app, its schemas: some 70,000 objects) lives as long
    # as the process: out of the garbage collector's full passes, which otherwise walked
    # it all and stopped the event loop for 100 ms and more every few seconds under load.
    gc.collect()
    gc.freeze()
    # uvicorn handles SIGINT/SIGTERM while it runs, then re-raises them once it has shut
    # down gracefully; these handlers catch that re-raise so the process exits 0.
    previous = {sig: signal.signal(sig, _remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        DrainingServer(config, grace_s=settings.drain_grace_s, on_signal=_drain).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received
