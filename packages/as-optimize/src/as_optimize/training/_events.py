"""What the monitor reports: events (a detector fired, a rollback, a resume) and decisions."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from as_optimize.exceptions import MetricsFileError

__all__ = ["Action", "Decision", "Event", "EventKind", "read_events"]

logger = logging.getLogger("as_optimize.training")

EventKind = Literal[
    "nonfinite",
    "divergence",
    "exploding_gradient",
    "stall",
    "slowdown",
    "leak",
    "rollback",
    "resume",
    "checkpoint_skipped",
    "checkpoint_failed",
]
Action = Literal["continue", "stop", "rollback"]
Figure = float | int | str | bool | None

_ACTION_RANK: dict[Action, int] = {"continue": 0, "rollback": 1, "stop": 2}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing the monitor noticed, with the step and the figures behind it.

    Attributes:
        kind: ``nonfinite``, ``divergence``, ``exploding_gradient``, ``stall``,
            ``slowdown``, ``leak`` (detectors); ``rollback``, ``resume``,
            ``checkpoint_skipped``, ``checkpoint_failed`` (what the monitor did or met).
        step: The global step it happened at (the number of optimizer steps done).
        epoch: The epoch of that step.
        message: One sentence for people.
        policy: The detector's policy (``warn``, ``stop``, ``rollback``); ``None`` for
            events that are not a detector's.
        action: What the monitor did: ``continue``, ``stop`` or ``rollback``.
        figures: The numbers behind it (the loss, the median it was compared with, ...).
        time_s: Seconds since the monitor started, on its clock.
    """

    kind: EventKind
    step: int
    epoch: int
    message: str
    policy: str | None = None
    action: Action = "continue"
    figures: Mapping[str, Figure] = field(default_factory=dict)
    time_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        """The event as a JSON-ready mapping (the line written to ``events.jsonl``)."""
        return {
            "kind": self.kind,
            "step": self.step,
            "epoch": self.epoch,
            "message": self.message,
            "policy": self.policy,
            "action": self.action,
            "figures": {k: _finite_or_text(v) for k, v in self.figures.items()},
            "time_s": self.time_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Event:
        """Rebuild an event from :meth:`to_json`'s mapping.

        Raises:
            KeyError, TypeError, ValueError: The mapping is not an event.
        """
        figures = data.get("figures", {})
        if not isinstance(figures, Mapping):
            raise TypeError("figures is not a mapping")
        action = str(data.get("action", "continue"))
        if action not in _ACTION_RANK:
            raise ValueError(f"unknown action {action!r}")
        policy = data.get("policy")
        time_s = data.get("time_s", 0.0)
        return cls(
            kind=str(data["kind"]),  # type: ignore[arg-type]
            step=int(str(data["step"])),
            epoch=int(str(data.get("epoch", 0))),
            message=str(data["message"]),
            policy=None if policy is None else str(policy),
            action=action,  # type: ignore[arg-type,unused-ignore]
            figures=dict(figures),
            time_s=float(time_s) if isinstance(time_s, int | float) else 0.0,
        )


def _finite_or_text(value: Figure) -> Figure:
    # JSON has no NaN or infinity: such figures are written as the text "nan", "inf".
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class Decision:
    """What :meth:`Monitor.step` and :meth:`Monitor.evaluate` decided.

    Attributes:
        action: ``continue``; ``stop`` (end the run); ``rollback`` (the model, optimizer
            and data position were put back to an earlier checkpoint: leave the batch
            loop, :meth:`Monitor.epochs` resumes from there).
        events: The events of this call, possibly none.
    """

    action: Action = "continue"
    events: tuple[Event, ...] = ()

    @property
    def interrupt(self) -> bool:
        """Whether the loop over batches must be left: a stop or a rollback."""
        return self.action != "continue"

    @property
    def stop(self) -> bool:
        """Whether the run must end."""
        return self.action == "stop"


def strongest(actions: list[Action]) -> Action:
    """The action that wins among several: stop over rollback over continue."""
    return max(actions, key=_ACTION_RANK.__getitem__, default="continue")


def read_events(run_dir: str | Path, *, strict: bool = False) -> list[Event]:
    """The events of a run, oldest first, from its ``events.jsonl``.

    Args:
        run_dir: The run's folder (or the events file itself).
        strict: Raise on a line that is not an event instead of skipping it with a
            warning (a process killed while writing leaves a torn last line).

    Raises:
        MetricsFileError: With ``strict``, a line that is not an event (file and line named).
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "events.jsonl"
    if not path.exists():
        return []
    events: list[Event] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise TypeError("not a JSON object")
                events.append(Event.from_json(data))
            except (ValueError, KeyError, TypeError) as exc:
                message = f"{path}:{number}: not an event ({exc})"
                if strict:
                    raise MetricsFileError(message, path=path, line=number) from exc
                logger.warning("%s; line skipped", message)
    return events
