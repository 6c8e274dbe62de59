"""TensorBoard event files: the monitor's scalars and events, for ``tensorboard --logdir``.

Written with TensorBoard's own event writer and protocol buffers (the ``tensorboard``
extra; no TensorFlow, no torch ``SummaryWriter``): one event per step holding all of the
step's scalars, queued to TensorBoard's writer thread.

=========================  ==============================================================
tag                        what
=========================  ==============================================================
``train/loss``             the step's loss (also ``grad_norm``, ``lr``, ``lr_1``, ...,
                           ``samples_per_s``, ``step_time_s``)
``memory/host_rss_bytes``  at the steps memory is read (also ``device_allocated_bytes``,
                           ``device_reserved_bytes`` when there is a device)
``eval/<metric>``          each evaluation metric, at the evaluation's step
``events/<kind>``          each event as text: ``step 12: non-finite loss ...``
=========================  ==============================================================

A resume or a rollback to step ``S`` writes a session start at ``S + 1``: TensorBoard then
drops what the abandoned branch had written for the steps from there on, as the metrics
reader does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from as_core.extras import require
from as_optimize.exceptions import MissingExtraError
from as_optimize.training._events import Event

__all__ = ["TensorBoardSink", "load_tensorboard"]

_STEP_TAGS = {
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "samples_per_s": "train/samples_per_s",
    "step_time_s": "train/step_time_s",
    "host_rss_bytes": "memory/host_rss_bytes",
    "device_allocated_bytes": "memory/device_allocated_bytes",
    "device_reserved_bytes": "memory/device_reserved_bytes",
}
_NOT_SCALARS = frozenset({"kind", "step", "epoch", "time_s"})


def load_tensorboard() -> None:
    """Import TensorBoard's writer, or raise :class:`MissingExtraError` naming the extra."""
    require(
        "tensorboard",
        "tensorboard",
        error=MissingExtraError,
        feature="TensorBoard event files (tensorboard.enabled)",
    )


class TensorBoardSink:
    """Writes the monitor's records and events to an event file in ``log_dir``.

    Args:
        log_dir: The folder of the event files (created).
        every_steps: Write the scalars of every ``every_steps``-th step (evaluations and
            events always).
        flush_every_s: How often TensorBoard's writer thread flushes on its own.
    """

    def __init__(self, log_dir: Path, *, every_steps: int = 1, flush_every_s: float = 2.0) -> None:
        """Open a new event file (TensorBoard reads every file of the folder)."""
        load_tensorboard()
        from tensorboard.compat.proto import (  # type: ignore[import-untyped]
            event_pb2,
            summary_pb2,
        )
        from tensorboard.plugins.text.summary_v2 import text_pb  # type: ignore[import-untyped]
        from tensorboard.summary.writer.event_file_writer import (  # type: ignore[import-untyped]
            EventFileWriter,
        )

        self._event = event_pb2.Event
        self._session_log = event_pb2.SessionLog
        self._summary = summary_pb2.Summary
        self._value = summary_pb2.Summary.Value
        self._text_pb = text_pb
        self.every_steps = every_steps
        log_dir.mkdir(parents=True, exist_ok=True)
        self._writer: Any = EventFileWriter(
            str(log_dir), max_queue_size=100, flush_secs=max(int(flush_every_s), 1)
        )
        self.log_dir = log_dir

    def record(self, record: Mapping[str, Any]) -> None:
        """Write a step's or an evaluation's scalars; a ``resume`` record purges."""
        kind = record.get("kind")
        step = int(record["step"])
        if kind == "step":
            if step % self.every_steps:
                return
            values = [
                self._value(tag=_STEP_TAGS.get(name) or f"train/{name}", simple_value=value)
                for name, value in record.items()
                if name not in _NOT_SCALARS and isinstance(value, int | float)
            ]
        elif kind == "eval":
            values = [
                self._value(tag=f"eval/{name}", simple_value=value)
                for name, value in record.items()
                if name not in _NOT_SCALARS and isinstance(value, int | float)
            ]
        elif kind == "resume":
            self._add(
                self._event(
                    wall_time=time.time(),
                    step=step + 1,
                    session_log=self._session_log(status=self._session_log.START),
                )
            )
            return
        else:
            return
        if values:
            summary = self._summary(value=values)
            self._add(self._event(wall_time=time.time(), step=step, summary=summary))

    def event(self, event: Event) -> None:
        """Write an event as text under ``events/<kind>``."""
        policy = f" [policy {event.policy}: {event.action}]" if event.policy else ""
        text = f"step {event.step}: {event.message}{policy}"
        summary = self._text_pb(f"events/{event.kind}", text)
        self._add(self._event(wall_time=time.time(), step=event.step, summary=summary))

    def _add(self, event: Any) -> None:
        self._writer.add_event(event)

    def flush(self) -> None:
        """Have the writer thread write what is queued."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
