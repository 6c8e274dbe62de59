"""Training runs from the training monitor's logs, read through as-optimize's readers.

A run is a folder holding the monitor's ``metrics.jsonl`` (and ``events.jsonl``):
:func:`find_runs` finds them under the folders given, :func:`load_run` reads one with
:func:`as_optimize.training.read_metrics` and :func:`~as_optimize.training.read_events`.
Both files are appended to while a run trains; reading them again shows the new steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from as_optimize.training import Event, read_events, read_metrics

if TYPE_CHECKING:
    import polars as pl

__all__ = ["METRICS_FILE", "TrainingRun", "TrainingRunError", "find_runs", "load_run"]

#: The monitor's metrics file in a run's folder.
METRICS_FILE = "metrics.jsonl"


class TrainingRunError(ValueError):
    """A place that holds no training run; the message says what and where."""


def find_runs(places: Iterable[Path | str], *, depth: int = 3) -> list[Path]:
    """The training runs in ``places``: each one that is a run, or runs inside it.

    Args:
        places: Run folders, or folders holding runs (searched ``depth`` levels down).
        depth: How deep to look inside a folder that is not a run itself.

    Raises:
        TrainingRunError: A place does not exist, or holds no run.
    """
    found: list[Path] = []
    for place in places:
        path = Path(place).expanduser()
        if not path.exists():
            raise TrainingRunError(f"{path}: no such folder")
        if path.is_file():
            if path.name != METRICS_FILE:
                raise TrainingRunError(f"{path}: not a training monitor's {METRICS_FILE}")
            found.append(path.parent)
            continue
        if (path / METRICS_FILE).is_file():
            found.append(path)
            continue
        inside = sorted(
            metrics.parent
            for level in range(1, depth + 1)
            for metrics in path.glob("/".join(["*"] * level) + f"/{METRICS_FILE}")
        )
        if not inside:
            raise TrainingRunError(
                f"{path}: no training run here (no {METRICS_FILE} in it or in the folders "
                f"{depth} levels below; the training monitor writes one per run)"
            )
        found.extend(inside)
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class TrainingRun:
    """One run's metrics and events as read now.

    Attributes:
        path: The run's folder.
        steps: One row per optimizer step (``step``, ``loss``, ``samples_per_s``, ...).
        evaluations: One row per evaluation (``step`` and a column per metric).
        events: What the monitor's detectors noticed and what it did, oldest first.
    """

    path: Path
    steps: pl.DataFrame
    evaluations: pl.DataFrame
    events: list[Event]

    def events_table(self) -> list[dict[str, object]]:
        """The events as rows for a table: step, epoch, kind, action, message."""
        return [
            {
                "step": e.step,
                "epoch": e.epoch,
                "kind": e.kind,
                "action": e.action,
                "message": e.message,
            }
            for e in self.events
        ]


def load_run(path: Path | str) -> TrainingRun:
    """Read a training run's metrics and events (torn or foreign lines are skipped).

    Raises:
        TrainingRunError: ``path`` holds no ``metrics.jsonl``.
    """
    import polars as pl

    folder = Path(path)
    if not (folder / METRICS_FILE).is_file():
        raise TrainingRunError(f"{folder}: no {METRICS_FILE}: not a training run")
    frame = read_metrics(folder)
    if "kind" not in frame.columns or frame.is_empty():
        empty = pl.DataFrame(schema={"step": pl.Int64})
        return TrainingRun(folder, empty, empty, read_events(folder))
    steps = frame.filter(pl.col("kind") == "step").sort("step")
    evaluations = frame.filter(pl.col("kind") == "eval").sort("step")
    # Columns of the other kind are null throughout: leave them out of each table.
    steps = steps.select([c for c in steps.columns if steps[c].null_count() < steps.height])
    evaluations = evaluations.select(
        [c for c in evaluations.columns if evaluations[c].null_count() < evaluations.height]
    )
    return TrainingRun(folder, steps, evaluations, read_events(folder))
