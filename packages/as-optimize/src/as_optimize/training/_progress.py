"""Progress for people: a rich bar with an ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Literal

from as_core.fmt import format_seconds

__all__ = ["ProgressReporter", "choose_mode"]

logger = logging.getLogger("as_optimize.training")

Mode = Literal["bar", "lines", "off"]


def choose_mode(setting: str, stream: Any = None) -> Mode:
    """``auto`` becomes ``bar`` when stderr is a terminal and ``lines`` otherwise."""
    if setting in ("bar", "lines", "off"):
        return setting  # type: ignore[return-value]
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "lines"


def status_text(figures: dict[str, Any]) -> str:
    """``loss 0.1234  grad 1.2  lr 1e-03  5.1k samples/s`` from a step record."""
    parts: list[str] = []
    loss = figures.get("loss")
    if isinstance(loss, float):
        parts.append(f"loss {loss:.4g}")
    grad = figures.get("grad_norm")
    if isinstance(grad, float):
        parts.append(f"grad {grad:.3g}")
    lr = figures.get("lr")
    if isinstance(lr, float):
        parts.append(f"lr {lr:.3g}")
    rate = figures.get("samples_per_s")
    if isinstance(rate, float):
        parts.append(f"{rate:,.0f} samples/s")
    return "  ".join(parts)


class ProgressReporter:
    """Shows a run's progress; the clock is the monitor's (nanoseconds).

    Args:
        mode: ``bar`` (rich, with ETA), ``lines`` (an INFO log line every ``every_steps``
            steps, with an ETA when the total is known) or ``off``.
        every_steps: How often ``lines`` mode logs.
        clock: The monitor's clock, integer nanoseconds.
        stream: Where the bar is drawn (the terminal's stderr by default).
    """

    def __init__(
        self,
        mode: Mode,
        *,
        every_steps: int,
        clock: Callable[[], int],
        stream: Any = None,
    ) -> None:
        """Prepare; nothing is shown before :meth:`start`."""
        self.mode = mode
        self.every_steps = every_steps
        self.clock = clock
        self.total: int | None = None
        self._stream = stream
        self._bar: Any = None
        self._task: Any = None
        self._start_ns = 0
        self._start_step = 0
        self._last_text_ns = -(10**18)

    def start(self, step: int, total: int | None) -> None:
        """Begin at ``step`` (a resumed run starts past 0) of ``total`` (None: unknown)."""
        self.total = total
        self._start_ns = self.clock()
        self._start_step = step
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        import as_logging

        console = Console(file=self._stream or as_logging.terminal_stderr())
        self._bar = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            refresh_per_second=4,
        )
        self._bar.start()
        self._task = self._bar.add_task("training", total=total, completed=step, status="")

    def set_total(self, total: int) -> None:
        """Learn the total number of steps once it is known."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def due(self, step: int, now: int) -> bool:
        """Whether ``step`` is shown now (``now``: the monitor's clock, nanoseconds).

        The bar is told at most 4 times a second (it redraws at that rate; telling rich's
        task at every step takes its lock and costs as much as the rest of a step's
        monitoring); lines are logged every ``every_steps`` steps.
        """
        if self.mode == "bar":
            return now - self._last_text_ns >= 250_000_000
        return self.mode == "lines" and step % self.every_steps == 0

    def show(self, step: int, figures: dict[str, Any], now: int) -> None:
        """Show ``step``'s figures (when :meth:`due` said so); ``now`` is the clock's."""
        if self.mode == "bar":
            self._last_text_ns = now
            self._bar.update(self._task, completed=step, status=status_text(figures))
        elif self.mode == "lines":
            self._log_line(step, figures)

    def update(self, step: int, figures: dict[str, Any], now: int | None = None) -> None:
        """:meth:`show` ``step`` if it is :meth:`due`."""
        now = self.clock() if now is None else now
        if self.due(step, now):
            self.show(step, figures, now)

    def finish(self, step: int) -> None:
        """Show the last step reached (the bar may be up to a quarter second behind)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def _log_line(self, step: int, figures: dict[str, Any]) -> None:
        elapsed_ns = self.clock() - self._start_ns
        done = step - self._start_step
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and done > 0 and elapsed_ns > 0:
            remaining = max(self.total - step, 0) * elapsed_ns / done / 1e9
            eta = f"  ETA {format_seconds(remaining)}"
        logger.info(
            "step %d%s  %s%s",
            step,
            of,
            status_text(figures),
            eta,
            extra={"step": step, "loss": figures.get("loss")},
        )

    def close(self) -> None:
        """Remove the bar; safe to call twice."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
