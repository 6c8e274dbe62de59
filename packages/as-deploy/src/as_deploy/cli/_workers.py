"""``as-deploy serve --workers N``: N server processes on one port.

The supervisor (the ``as-deploy serve`` process) binds the port with ``SO_REUSEPORT``
(without listening: it only holds the port) and starts N worker processes
(``python -m as_deploy.cli._workers``); each binds and listens on a socket of its own on
the same port, and the kernel spreads new connections over them (on Linux, by a hash of
the connection's addresses): a new connection wakes one worker, where one shared
listening socket wakes every worker's event loop and all but one find nothing to
accept. Every worker is a whole server: its own event loop, model copies, batchers, limits
and drain. The supervisor

- passes each worker the settings it resolved (file, environment and options), as JSON;
- gives the workers one Prometheus multiprocess folder, so that ``/metrics`` on any
  worker reports the sum over all of them (gauges: the sum over the live workers);
- forwards SIGTERM and SIGINT to every worker (each drains as a single server does,
  taking in the connections waiting on its socket before closing it) and, on the first
  one, lets go of the port;
- restarts a worker that dies while serving or is killed by a signal, and stops every
  worker and exits 1 when one exits with an error within ``STARTUP_S`` of starting (it
  would fail the same way again);
- kills what is left ``drain_grace_s + graceful_timeout_s`` (and a margin) after the
  first signal.

A worker watches a pipe from the supervisor: if the supervisor dies (``kill -9``), the
pipe closes and the worker stops as on SIGTERM rather than serving on unsupervised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from as_deploy.exceptions import AsDeployError

if TYPE_CHECKING:
    from as_deploy.settings import ServerSettings

__all__ = ["supervise", "worker_main"]

logger = logging.getLogger(__name__)

_SETTINGS = "AS_DEPLOY_WORKER_SETTINGS"
_PORT = "AS_DEPLOY_WORKER_PORT"
_PARENT_FD = "AS_DEPLOY_WORKER_PARENT_FD"
_INDEX = "AS_DEPLOY_WORKER_INDEX"
_LOG_DIR = "AS_DEPLOY_WORKER_LOG_DIR"
_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable

#: A worker that exits with an error sooner than this after it started failed to start.
STARTUP_S = 10.0
#: How long after the stop deadline the supervisor still waits before killing workers.
_KILL_MARGIN_S = 10.0


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float


class _Supervisor:
    """The workers, and what the supervisor does each tick."""

    def __init__(
        self, settings: ServerSettings, listen: socket.socket, env: dict[str, str]
    ) -> None:
        self.settings = settings
        self.settings_json = settings.model_dump_json()
        self.listen = listen
        self.port: int = listen.getsockname()[1]
        self.env = env
        self.metrics_dir = env[_METRICS_DIR]
        # The workers hold the read end; it reads as closed once this process is gone.
        self.parent_read, self.parent_write = os.pipe()
        self.workers: list[_Worker] = []
        self.received: list[int] = []
        self.forwarded = 0
        self.failure: str | None = None
        self.kill_at: float | None = None

    def spawn(self, index: int) -> _Worker:
        env = {
            **self.env,
            _SETTINGS: self.settings_json,
            _PORT: str(self.port),
            _PARENT_FD: str(self.parent_read),
            _INDEX: str(index),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "as_deploy.cli._workers"],
            env=env,
            pass_fds=(self.parent_read,),
            # Its own process group: Ctrl-C in a terminal reaches the supervisor only,
            # which forwards it once (a second SIGINT would skip the drain).
            process_group=0,
        )
        return _Worker(index, process, time.monotonic())

    def forward_signals(self) -> None:
        """Pass the signals received since the last tick on to every live worker."""
        while self.forwarded < len(self.received):
            sig = self.received[self.forwarded]
            self.forwarded += 1
            if self.kill_at is None:
                self.listen.close()  # the workers' sockets stay open while they drain
                settings = self.settings
                self.kill_at = (
                    time.monotonic()
                    + settings.drain_grace_s
                    + settings.graceful_timeout_s
                    + _KILL_MARGIN_S
                )
            for worker in self.workers:
                if worker.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.send_signal(sig)

    def replace_dead(self) -> None:
        """Start a worker in the place of each one that exited unasked."""
        from prometheus_client import multiprocess

        for slot, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None or self.kill_at is not None:
                continue
            dead = worker.process.pid
            multiprocess.mark_process_dead(dead, self.metrics_dir)  # type: ignore[no-untyped-call]
            # Killed by a signal (the OOM killer, kill -9): it comes back. An error exit
            # soon after starting would only repeat: the server stops.
            if code > 0 and time.monotonic() - worker.started < STARTUP_S:
                self.failure = f"worker {worker.index} exited with code {code} while starting"
                logger.error("%s; stopping the others", self.failure)
                self.received.append(signal.SIGTERM)
                return
            logger.warning(
                "worker %d (pid %d) exited with code %s; starting another",
                worker.index,
                worker.process.pid,
                code,
            )
            self.workers[slot] = self.spawn(worker.index)

    def stopped(self) -> bool:
        """Whether every worker has stopped since the first signal (killed past the limit)."""
        if self.kill_at is None:
            return False
        if all(worker.process.poll() is not None for worker in self.workers):
            return True
        if time.monotonic() <= self.kill_at:
            return False
        for worker in self.workers:
            if worker.process.poll() is None:
                logger.error("worker %d did not stop in time; killing it", worker.index)
                worker.process.kill()
        for worker in self.workers:
            worker.process.wait()
        return True

    def close(self) -> None:
        """Kill any worker still running (after an error), release the pipe."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        os.close(self.parent_read)
        os.close(self.parent_write)


def supervise(settings: ServerSettings, listen: socket.socket, *, log_dir: Path | None) -> int:
    """Run ``settings.workers`` worker processes on ``listen``'s port until they stop.

    ``listen`` is bound with ``SO_REUSEPORT`` and not listening.

    Returns:
        The first stop signal received (its number).

    Raises:
        AsDeployError: A worker failed while starting; the others were stopped.
    """
    metrics_dir = tempfile.mkdtemp(prefix="as-deploy-metrics-")
    env = {**os.environ, _METRICS_DIR: metrics_dir}
    if log_dir is not None:
        env[_LOG_DIR] = str(log_dir)
    supervisor = _Supervisor(settings, listen, env)

    def remember(sig: int, frame: FrameType | None) -> None:
        supervisor.received.append(sig)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.workers = [supervisor.spawn(index) for index in range(settings.workers)]
        while True:
            supervisor.forward_signals()
            supervisor.replace_dead()
            if supervisor.stopped():
                break
            time.sleep(0.05)
    finally:
        supervisor.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if supervisor.failure is not None:
        raise AsDeployError(f"{supervisor.failure}; see its error above")
    return supervisor.received[0]


def _watch_parent(fd: int) -> None:
    """Stop this worker as on SIGTERM once the supervisor's pipe closes."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="as-deploy supervisor watch", daemon=True).start()


def worker_main() -> int:
    """Serve as one worker: settings, socket and pipe come from the supervisor."""
    from as_deploy.cli import serve
    from as_deploy.settings import ServerSettings

    settings = ServerSettings.model_validate_json(os.environ.pop(_SETTINGS))
    port = int(os.environ.pop(_PORT))
    _watch_parent(int(os.environ.pop(_PARENT_FD)))
    index = int(os.environ.pop(_INDEX))
    log_dir = os.environ.pop(_LOG_DIR, None)
    # One JSON-lines file per worker: rotating one file from several processes loses lines.
    serve._configure_logging(
        settings,
        Path(log_dir) if log_dir else None,
        filename=f"as-deploy-worker-{index}.jsonl",
    )
    try:
        listen = serve._bind(settings.host, port, reuse_port=True)
        serve._serve(settings, listen)
    except Exception:
        logger.exception("worker %d failed", index)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
