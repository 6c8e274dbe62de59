"""Optuna studies of ``as-optimize run --search optuna``, read from their storage.

as-optimize keeps a search in an Optuna storage (``OUTPUT/study.db``, or the URL given
with ``--storage``) with named objectives (``latency_s``, ``size_bytes``, ``quality``) and
the quality gate as a constraint. This module reads any multi-objective study through
Optuna's public API: the trials with their objectives and knobs, and Optuna's own Pareto
front (``Study.best_trials``, which leaves infeasible trials out). The storage's address
is made as as-optimize makes it (:func:`as_optimize.compress.storage_url`). Optuna is an
optional dependency (``as-dashboard[studies]``); without it the page says so.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "StudyError",
    "StudyView",
    "TrialRow",
    "list_studies",
    "load_study_view",
    "optuna_available",
    "storage_of",
]


class StudyError(ValueError):
    """A storage or study that cannot be read; the message says what and where."""


def optuna_available() -> bool:
    """Whether Optuna is installed (the ``studies`` extra)."""
    return importlib.util.find_spec("optuna") is not None


def storage_of(text: str) -> str:
    """The storage URL of ``text``: a URL as given, a file path as SQLite (as as-optimize).

    Raises:
        StudyError: Nothing given, or a file path that does not exist (Optuna would
            create an empty database there).
    """
    from as_optimize.compress import storage_url

    text = text.strip()
    if not text:
        raise StudyError("no storage given: type a study.db path or a database URL")
    if "://" not in text:
        path = Path(text).expanduser()
        if path.is_dir():
            path = path / "study.db"  # as-optimize's default: OUTPUT/study.db
        if not path.is_file():
            raise StudyError(f"{path}: no such file (an Optuna SQLite storage)")
        text = str(path)
    return storage_url(text, Path.cwd())


def _redacted(url: str) -> str:
    from as_optimize.compress import redact_storage

    return redact_storage(url)


def list_studies(url: str) -> list[str]:
    """The names of the studies in the storage at ``url``.

    Raises:
        StudyError: The storage cannot be opened, or holds no study.
    """
    import optuna

    try:
        summaries = optuna.get_all_study_summaries(storage=url, include_best_trial=False)
    except Exception as exc:  # Optuna and SQLAlchemy raise many kinds
        raise StudyError(f"{_redacted(url)}: not a readable Optuna storage: {exc}") from exc
    if not summaries:
        raise StudyError(f"{_redacted(url)}: holds no study")
    return sorted(summary.study_name for summary in summaries)


@dataclass(frozen=True)
class TrialRow:
    """One trial with its objectives.

    Attributes:
        number: Optuna's trial number.
        values: Objective name to value.
        params: The knobs the trial tried.
        feasible: Whether it met the constraints (the quality gate); ``None`` when the
            study has none.
        on_front: Whether it is on Optuna's Pareto front.
    """

    number: int
    values: dict[str, float]
    params: dict[str, Any]
    feasible: bool | None
    on_front: bool


@dataclass(frozen=True)
class StudyView:
    """A study as the page shows it.

    Attributes:
        name: The study's name.
        objectives: The objectives' names, in order (Optuna's metric names, else
            ``objective 0``, ``objective 1``, ...).
        directions: ``minimize`` or ``maximize`` per objective.
        trials: The completed trials.
        states: How many trials are in each state (``COMPLETE``, ``FAIL``, ...).
    """

    name: str
    objectives: list[str]
    directions: list[str]
    trials: list[TrialRow]
    states: dict[str, int] = field(default_factory=dict)

    @property
    def front(self) -> list[TrialRow]:
        """The trials on the Pareto front."""
        return [trial for trial in self.trials if trial.on_front]

    def table(self) -> list[dict[str, object]]:
        """One row per completed trial: number, front, feasible, objectives, knobs."""
        return [
            {
                "trial": t.number,
                "on front": t.on_front,
                "feasible": t.feasible,
                **t.values,
                **{f"knob {k}": v for k, v in t.params.items()},
            }
            for t in self.trials
        ]


def load_study_view(url: str, name: str) -> StudyView:
    """Read the study ``name`` in the storage at ``url``.

    Raises:
        StudyError: The storage or the study cannot be read.
    """
    import optuna

    from as_optimize.compress import REPEAT_ATTR

    try:
        study = optuna.load_study(study_name=name, storage=url)
        trials = study.get_trials(deepcopy=False)
        directions = [d.name.lower() for d in study.directions]
        names = list(study.metric_names or [f"objective {i}" for i in range(len(directions))])
        # A trial that repeated knobs another trial measured carries that trial's
        # figures: left off the front, as as-optimize's report leaves it off.
        front = (
            {t.number for t in study.best_trials if REPEAT_ATTR not in t.user_attrs}
            if len(directions) > 1
            else set()
        )
        if len(directions) == 1 and any(t.state.name == "COMPLETE" for t in trials):
            front = {study.best_trial.number}
    except Exception as exc:  # Optuna and SQLAlchemy raise many kinds
        raise StudyError(f"{_redacted(url)}: study {name!r}: {exc}") from exc
    states: dict[str, int] = {}
    rows: list[TrialRow] = []
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
        if trial.state.name != "COMPLETE" or trial.values is None:
            continue
        constraints = trial.constraints
        rows.append(
            TrialRow(
                number=trial.number,
                values=dict(zip(names, trial.values, strict=False)),
                params=dict(trial.params),
                feasible=None if not constraints else all(c <= 0 for c in constraints.values()),
                on_front=trial.number in front,
            )
        )
    return StudyView(name, names, directions, rows, states)
