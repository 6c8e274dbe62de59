"""``as-optimize run --search optuna`` and ``as-optimize worker``: knobs searched with Optuna.

A study holds everything a worker needs: the model, target, quality gate, measurement
options, the search space (technique, then that technique's knobs; then ``stage``: none
or a torch stage, and that stage's knobs, when stages apply) and the budget (how many
candidates to evaluate) are study user attributes, so ``as-optimize worker
--storage URL --study NAME`` needs nothing else. Each process measures its own fp32
baseline (latencies from different machines are not comparable: give workers the same
hardware), then takes trials until the study holds the budget's evaluated trials. Each
trial builds one candidate and evaluates it through the same child-process evaluation
as ``run`` (:meth:`_Run.try_candidate`); a trial with a stage builds the stage's model
first (once per stage setting and process) and applies the technique to it, as the
grid's pipelines do (:meth:`_Run.try_item`).

Objectives: latency at the first batch size (minimize), size on disk (minimize), quality
(accuracy points or mean cosine against fp32, maximize); the quality gate is a
constraint (``Trial.set_constraint``, which replaced the samplers' ``constraints_func`` in
Optuna 5; feasible when every value is <= 0). A candidate that cannot be built or crashes
its runtime ends its trial FAIL with ``rejected`` set; it counts against the budget like
a measured one. A trial whose knobs an evaluated trial already had reuses that trial's
measurement (TPE repeats settings of small categorical spaces often) and neither counts
against the budget nor appears among the report's candidates; the budget is capped at
the number of distinct settings, and a sampler that only repeats (more repeats than
twice the budget) ends the search.

Workers keep a heartbeat on their running trial (RDB storages). A trial whose worker
stops beating for the grace period is marked FAIL by the next worker that looks, and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues its parameters again;
the budget reserves a slot for queued retries, so the retry runs even when the budget is
nearly spent. A trial that would exceed the budget waits (without holding a slot) for
the running ones, and ends PRUNED (``surplus``) once the budget is met, or gives way to a
queued retry.

SQLite (the default, a ``study.db`` in the output folder) is for one process: it resumes
after a kill. Parallel workers need PostgreSQL (``postgresql://`` is read as
``postgresql+psycopg://``, psycopg 3): SQLite takes one writer at a time, and parallel
workers on it have failed with "database is locked".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from as_core.extras import require
from as_optimize.compress._pipeline import TorchStage, default_stages
from as_optimize.compress._search import (
    CandidateResult,
    QualityGate,
    SearchOptions,
    SearchReport,
    _candidate_id,
    _check_output,
    _Item,
    _item_id,
    _prepare,
    _Prepared,
    _report,
    describe_result,
)
from as_optimize.compress._techniques import Technique, available_techniques
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "StudyOptions",
    "create_study",
    "redact_storage",
    "run_study",
    "run_worker",
    "storage_url",
]

#: The layout of the ``as_optimize`` study user attribute.
STUDY_SCHEMA_VERSION = 2

Sampler = Literal["tpe", "nsga2", "random"]
SAMPLERS: tuple[str, ...] = ("tpe", "nsga2", "random")

#: Trial user attributes.
CANDIDATE_ATTR = "candidate"
REJECTED_ATTR = "rejected"
WORKER_ATTR = "worker"
REPEAT_ATTR = "same_knobs_as_trial"
"""User attribute of a trial whose knobs another trial had measured: it carries that
trial's figures (the other's number is the value) and is left off the reported front."""
SLOT_ATTR = "slot"


@dataclass
class _Counts:
    """The study's trials as the budget sees them, from one trial's side.

    Attributes:
        counted: Evaluated trials that count (not repeats).
        going: Other running trials that hold a slot (building or measuring).
        claims: Other running trials taking a slot now, by number.
        waiting: Queued trials (retries).
        queued: Whether this trial itself was queued (a retry).
    """

    counted: int = 0
    going: int = 0
    claims: list[int] = field(default_factory=list)
    waiting: int = 0
    queued: bool = False


@dataclass
class StudyOptions:
    """Where the study lives and how it is searched.

    Attributes:
        storage: An SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a
            file path (SQLite); ``None``: ``study.db`` in the output folder.
        study_name: The study's name; ``None``: ``as-optimize-<model>``.
        trials: The budget: distinct knob settings the study must evaluate (rejected
            candidates count; repeats of a setting and trials of a stopped worker do
            not), at most the settings there are. ``None``: the study's own budget when
            it exists, else 20.
        sampler: ``tpe`` (multi-objective TPE), ``nsga2`` or ``random``.
        seed: The sampler's seed (``None``: random; give workers different seeds).
        heartbeat_interval_s: How often a worker marks its running trial alive.
        grace_period_s: A running trial without a heartbeat for this long is failed and
            its parameters retried.
        max_retry: How many times one trial's parameters are retried.
        poll_s: How often a trial over the budget checks whether it may run.
    """

    storage: str | None = None
    study_name: str | None = None
    trials: int | None = None
    sampler: str = "tpe"
    seed: int | None = None
    heartbeat_interval_s: int = 10
    grace_period_s: int = 60
    max_retry: int = 3
    poll_s: float = 1.0

    def check(self) -> None:
        """Refuse out-of-range values, naming the option.

        Raises:
            CompressionInputError: A value is out of range.
        """
        if self.trials is not None and self.trials < 1:
            raise CompressionInputError(f"--trials must be at least 1, not {self.trials}")
        if self.sampler not in SAMPLERS:
            raise CompressionInputError(
                f"--sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}"
            )
        if self.heartbeat_interval_s < 1:
            raise CompressionInputError(
                f"--heartbeat-interval must be at least 1 s, not {self.heartbeat_interval_s}"
            )
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise CompressionInputError(
                f"--grace-period ({self.grace_period_s} s) must be longer than the heartbeat "
                f"interval ({self.heartbeat_interval_s} s)"
            )
        if self.max_retry < 0:
            raise CompressionInputError(f"max_retry must be at least 0, not {self.max_retry}")
        if not (math.isfinite(self.poll_s) and self.poll_s > 0):
            raise CompressionInputError(f"poll_s must be a positive number, not {self.poll_s}")


def storage_url(storage: str | None, output: Path) -> str:
    """The SQLAlchemy URL for ``storage``: a URL as given, a file path as SQLite.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3,
    the driver the ``search`` extra installs); ``None`` is ``study.db`` in ``output``.
    """
    if not storage:
        return f"sqlite:///{(Path(output) / 'study.db').resolve()}"
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    for scheme in ("postgresql://", "postgres://"):
        if storage.startswith(scheme):
            return "postgresql+psycopg://" + storage.removeprefix(scheme)
    return storage


def redact_storage(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    require("sqlalchemy", "search", error=MissingExtraError)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://(unparsable URL)"


def _optuna() -> Any:
    require("optuna", "search", error=MissingExtraError)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's experimental warnings kept quiet.

    Its heartbeat, retry callback and multivariate TPE warn that they are experimental
    on every use; they are used on purpose.
    """
    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _open_storage(url: str, heartbeat_s: int, grace_s: int, max_retry: int) -> Any:
    optuna = _optuna()
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        with _quiet():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry
                ),
            )
    except ModuleNotFoundError as exc:
        raise CompressionInputError(
            f"the storage {redact_storage(url)} needs the Python module {exc.name!r}, which is "
            "not installed (PostgreSQL: give postgresql:// or postgresql+psycopg://)"
        ) from exc
    except (SQLAlchemyError, ValueError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise CompressionError(
            f"cannot open the study storage {redact_storage(url)}: "
            f"{detail[0] if detail else type(exc).__name__}"
        ) from exc


def _dispose(storage: Any) -> None:
    """Close the storage's pooled connections (psycopg warns of ones left open)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _load_study(name: str, storage: Any) -> Any | None:
    optuna = _optuna()
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _gate_attr(gate: QualityGate | None) -> dict[str, float | None]:
    gate = gate or QualityGate()
    return {
        "max_accuracy_drop": gate.max_accuracy_drop,
        "min_cosine": gate.min_cosine,
        "max_size_ratio": gate.max_size_ratio,
    }


def _options_attr(options: SearchOptions) -> dict[str, Any]:
    return {
        "batch_sizes": [int(b) for b in options.batch_sizes],
        "threads": options.threads,
        "max_time_s": options.max_time_s,
        "min_time_s": min(options.min_time_s, options.max_time_s),
        "target_rel_ci": options.target_rel_ci,
        "child_timeout_s": options.child_timeout_s,
        "calibration_examples": options.calibration_examples,
        "techniques": [t.name for t in options.techniques],
        "stages": [s.name for s in options.stages],
    }


def _builtin(names: Sequence[str]) -> list[Technique]:
    return _by_name("techniques", names, {t.name: t for t in available_techniques()})


def _builtin_stages(names: Sequence[str]) -> list[TorchStage]:
    return _by_name("stages", names, {s.name: s for s in default_stages()})


_Plugin = TypeVar("_Plugin")


def _by_name(kind: str, names: Sequence[str], known: dict[str, _Plugin]) -> list[_Plugin]:
    """The built-in plugins a study names, in its order; a worker builds no other."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CompressionInputError(
            f"the study uses {kind} {unknown} that are not built in; a worker can only "
            f"build the built-in ones ({', '.join(known)})"
        )
    return [known[n] for n in names]


def _choices(plugin: Technique | TorchStage, available: int) -> dict[str, list[Any]]:
    """Knob -> choices of a technique or stage: its ``search_space()``, else its settings'.

    Calibration sizes above the ``available`` examples set aside are lowered to that.
    """
    declared = getattr(plugin, "search_space", None)
    knobs: dict[str, list[Any]] = {}
    if callable(declared):
        for key, values in declared().items():
            knobs[key] = list(values)
    else:
        for setting in plugin.knobs():
            for key, value in setting.items():
                if value not in knobs.setdefault(key, []):
                    knobs[key].append(value)
    if "size" in knobs and available:
        sizes = sorted({min(int(s), available) for s in knobs["size"]})
        knobs["size"] = list(sizes)
    for key, values in knobs.items():
        if not values or any(
            not isinstance(v, (bool, int, float, str)) and v is not None for v in values
        ):
            raise CompressionInputError(
                f"{plugin.name}: knob {key!r} needs a list of plain values to search "
                f"over, not {values!r}"
            )
    return knobs


def _space(prepared: _Prepared) -> dict[str, dict[str, list[Any]]]:
    """Technique -> knob -> choices, for the techniques that apply (:func:`_choices`)."""
    available = prepared.calibration_available
    return {t.name: _choices(t, available) for t in prepared.applicable}


def _stage_space(prepared: _Prepared) -> dict[str, dict[str, list[Any]]]:
    """Stage -> knob -> choices, for the torch stages that apply (:func:`_choices`)."""
    return {s.name: _choices(s, 0) for s in prepared.stages}


def _config(
    spec: str,
    target: str,
    gate: dict[str, float | None],
    options: dict[str, Any],
    study: StudyOptions,
    space: dict[str, dict[str, list[Any]]],
    trials: int,
    stage_space: dict[str, dict[str, list[Any]]],
) -> dict[str, Any]:
    return {
        "schema_version": STUDY_SCHEMA_VERSION,
        "model": spec,
        "target": target,
        "gate": gate,
        "options": options,
        "space": space,
        "stage_space": stage_space,
        "trials": trials,
        "sampler": study.sampler,
        "heartbeat_interval_s": study.heartbeat_interval_s,
        "grace_period_s": study.grace_period_s,
        "max_retry": study.max_retry,
    }


def _same_settings(stored: dict[str, Any], spec: str, gate: Any, options: Any) -> str | None:
    """What differs between a study's stored settings and the ones given, if anything."""
    given = {"model": spec, "gate": gate, "options": options}
    for key, value in given.items():
        if stored.get(key) != value:
            return f"{key}: the study has {stored.get(key)!r}, this run gives {value!r}"
    return None


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _counted(trial: Any) -> bool:
    """An evaluated trial that counts against the budget: not a repeat of another."""
    return _evaluated(trial) and REPEAT_ATTR not in trial.user_attrs


def _space_size(
    space: dict[str, dict[str, list[Any]]], stage_space: dict[str, dict[str, list[Any]]]
) -> int:
    """How many distinct settings the space holds: each technique's, alone or after a stage's."""

    def settings(plugins: dict[str, dict[str, list[Any]]]) -> int:
        return sum(
            math.prod(len(choices) for choices in knobs.values()) for knobs in plugins.values()
        )

    return settings(space) * (1 + settings(stage_space))


def _evaluated(trial: Any) -> bool:
    """A trial that measured (or rejected) its candidate; stopped workers' trials are not."""
    optuna = _optuna()
    state = trial.state
    if state == optuna.trial.TrialState.COMPLETE:
        return True
    return bool(state == optuna.trial.TrialState.FAIL and trial.user_attrs.get(REJECTED_ATTR))


def _violations(
    gate: QualityGate, result: CandidateResult, size_ratio: float | None
) -> dict[str, float]:
    """The gate as constraints: how far over each limit (<= 0 is feasible)."""
    quality = result.quality
    assert quality is not None
    out = {}
    if gate.max_accuracy_drop is not None:
        drop = quality.accuracy_drop
        out["accuracy_drop"] = 100.0 if drop is None else drop - gate.max_accuracy_drop
    if gate.min_cosine is not None:
        out["min_cosine"] = gate.min_cosine - quality.mean_cosine
    if gate.max_size_ratio is not None and size_ratio is not None:
        out["size_ratio"] = size_ratio - gate.max_size_ratio
    return out


def _sampler(name: str, seed: int | None, budget: int) -> Any:
    optuna = _optuna()
    with _quiet():
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(
                population_size=max(4, min(50, budget // 3)), seed=seed
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            n_startup_trials=max(2, min(10, budget // 3)),
            multivariate=True,
            group=True,
            seed=seed,
        )


class _Rejected(Exception):
    """A candidate that could not be built or measured: its trial ends FAIL, counted."""


class _Worker:
    """One process taking trials from a study until it holds the budget's trials."""

    def __init__(
        self, study: Any, prepared: _Prepared, config: dict[str, Any], poll_s: float
    ) -> None:
        self.study = study
        self.prepared = prepared
        self.config = config
        self.poll_s = poll_s
        self.say = prepared.run.say
        self.techniques = {t.name: t for t in prepared.applicable}
        self.stages = {s.name: s for s in prepared.stages}
        self.evaluated = 0

    @property
    def budget(self) -> int:
        """Counted trials to reach: the study's budget, at most the distinct settings."""
        return min(
            int(self.config["trials"]),
            _space_size(self.config["space"], self.config.get("stage_space", {})),
        )

    def counts(self, own: int) -> _Counts:
        """The study's trials as the budget sees them, from trial ``own``'s side."""
        optuna = _optuna()
        states = optuna.trial.TrialState
        found = _Counts()
        repeats = 0
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number == own:
                found.queued = "fixed_params" in trial.system_attrs
                continue
            if _counted(trial):
                found.counted += 1
            elif _evaluated(trial):
                repeats += 1
            elif trial.state == states.RUNNING:
                slot = trial.user_attrs.get(SLOT_ATTR)
                if slot == "go":
                    found.going += 1
                elif slot == "claim":
                    found.claims.append(trial.number)
            elif trial.state == states.WAITING:
                found.waiting += 1
        if repeats > 2 * self.budget:
            found.counted = max(found.counted, self.budget)
        return found

    def wait_for_slot(self, trial: Any) -> None:
        """Return when ``trial`` may run within the budget; else end it PRUNED.

        Only trials that hold a slot (``go``) or are taking one (``claim``) occupy it; a
        trial that waits does not, so waiters never wait on each other. A waiter that
        sees a free slot claims it, then counts again: of claims made at once, the
        lowest trial number goes and the others wait. A new trial also leaves a slot to
        each queued retry, and gives way to them.
        """
        optuna = _optuna()
        trial.set_user_attr(SLOT_ATTR, "wait")  # a retry inherits its trial's "go"
        while True:
            seen = self.counts(trial.number)
            if seen.counted >= self.budget:
                self.study.stop()
                raise optuna.TrialPruned(f"surplus: the study holds its {self.budget} trials")
            free = self.budget - seen.counted - seen.going - len(seen.claims)
            reserved = 0 if seen.queued else seen.waiting
            if free - reserved >= 1:
                trial.set_user_attr(SLOT_ATTR, "claim")
                again = self.counts(trial.number)
                ahead = [n for n in again.claims if n < trial.number]
                if again.counted + again.going + len(ahead) + 1 <= self.budget:
                    trial.set_user_attr(SLOT_ATTR, "go")
                    return
                trial.set_user_attr(SLOT_ATTR, "wait")
            elif free >= 1:
                raise optuna.TrialPruned("surplus: gave way to a queued retry")
            with _quiet():
                optuna.storages.fail_stale_trials(self.study)
            time.sleep(self.poll_s)

    def objective(self, trial: Any) -> tuple[float, float, float]:
        self.wait_for_slot(trial)
        space: dict[str, dict[str, list[Any]]] = self.config["space"]
        name = trial.suggest_categorical("technique", list(space))
        knobs = {
            key: trial.suggest_categorical(f"{name}:{key}", choices)
            for key, choices in space[name].items()
        }
        stage_space: dict[str, dict[str, list[Any]]] = self.config.get("stage_space", {})
        stage_name = "none"
        stage_knobs: dict[str, Any] = {}
        if stage_space:
            stage_name = trial.suggest_categorical("stage", ["none", *stage_space])
        if stage_name != "none":
            stage_knobs = {
                key: trial.suggest_categorical(f"{stage_name}:{key}", choices)
                for key, choices in stage_space[stage_name].items()
            }
        trial.set_user_attr(WORKER_ATTR, _worker_id())
        technique = self.techniques.get(name)
        if technique is None:
            raise CompressionError(f"technique {name!r} does not apply in this worker")
        stage = self.stages.get(stage_name)
        if stage_name != "none" and stage is None:
            raise CompressionError(f"stage {stage_name!r} does not apply in this worker")
        run = self.prepared.run
        same = self.same_knobs(trial)
        if same is not None:
            return self.repeat(trial, same)
        if stage is None:
            result = run.try_candidate(
                technique,
                knobs,
                self.prepared.base_path,
                self.prepared.context,
                cid=f"trial-{trial.number}",
            )
            result.id = f"trial-{trial.number}-{_candidate_id(technique, knobs)}"
        else:
            item = _Item(technique, knobs, stage=stage, stage_knobs=stage_knobs)
            result = run.try_item(item, self.prepared)
            result.id = f"trial-{trial.number}-{_item_id(item)}"
        record = result.model_dump(mode="json")
        record["file"] = None if result.path is None else str((run.output / result.path).resolve())
        self.evaluated += 1
        self.say(f"trial {trial.number}: {describe_result(result, run.first)}")
        if result.quality is None or run.first not in result.latency:
            trial.set_user_attr(CANDIDATE_ATTR, record)
            trial.set_user_attr(REJECTED_ATTR, True)
            raise _Rejected(result.reason)
        for key, value in _violations(run.gate, result, run.size_ratio(result)).items():
            trial.set_constraint(key, value)
        trial.set_user_attr(CANDIDATE_ATTR, record)
        quality = result.quality
        score = quality.accuracy if quality.accuracy is not None else quality.mean_cosine
        return (
            result.latency[run.first].median_s,
            float(result.size_bytes or 0),
            float(score),
        )

    def same_knobs(self, trial: Any) -> Any | None:
        """The first evaluated trial with ``trial``'s parameters, if any."""
        params = trial.params
        for other in self.study.get_trials(deepcopy=False):
            if other.number != trial.number and other.params == params and _evaluated(other):
                if REPEAT_ATTR not in other.user_attrs:
                    return other
        return None

    def repeat(self, trial: Any, same: Any) -> tuple[float, float, float]:
        """End ``trial`` with the measurement of ``same`` (the same knobs)."""
        trial.set_user_attr(REPEAT_ATTR, same.number)
        self.say(f"trial {trial.number}: same knobs as trial {same.number}; its figures reused")
        if same.values is None:
            trial.set_user_attr(REJECTED_ATTR, True)
            raise _Rejected(f"same knobs as trial {same.number}, which was rejected")
        for key, value in same.constraints.items():
            trial.set_constraint(key, value)
        latency, size, quality = same.values
        return float(latency), float(size), float(quality)

    def stop_when_done(self, study: Any, trial: Any) -> None:
        if self.counts(-1).counted >= self.budget:
            study.stop()

    def work(self) -> None:
        """Take trials until the study holds its budget (nothing when it already does)."""
        if self.counts(-1).counted >= self.budget:
            return
        with _quiet():
            self.study.optimize(
                self.objective,
                n_trials=None,
                catch=(_Rejected,),
                callbacks=[self.stop_when_done],
                gc_after_trial=False,
            )


def _results(study: Any, prepared: _Prepared) -> list[CandidateResult]:
    """The evaluated trials of the study as candidates, with their trial in the notes."""
    results = list(prepared.not_applicable)
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        record = trial.user_attrs.get(CANDIDATE_ATTR)
        if not _counted(trial) or record is None:
            continue
        candidate = CandidateResult.model_validate({k: v for k, v in record.items() if k != "file"})
        candidate.notes.append(
            f"trial {trial.number}, evaluated by {trial.user_attrs.get(WORKER_ATTR, '?')}"
        )
        retried = trial.system_attrs.get("failed_trial")
        if retried is not None:
            candidate.notes.append(
                f"retry of trial {retried}, whose worker stopped beating (heartbeat lost)"
            )
        results.append(candidate)
    return results


def _summary(study: Any, url: str, config: dict[str, Any]) -> dict[str, Any]:
    optuna = _optuna()
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    retries = [
        {"trial": t.number, "retry_of": t.system_attrs["failed_trial"]}
        for t in trials
        if "failed_trial" in t.system_attrs
    ]
    repeats = [
        {"trial": t.number, "same_knobs_as": t.user_attrs[REPEAT_ATTR]}
        for t in trials
        if REPEAT_ATTR in t.user_attrs
    ]
    with _quiet():
        best = [t.number for t in study.best_trials if REPEAT_ATTR not in t.user_attrs]
    return {
        "name": study.study_name,
        "storage": redact_storage(url),
        "sampler": config["sampler"],
        "trials_requested": config["trials"],
        "trials_evaluated": sum(_counted(t) for t in trials),
        "states": states,
        "retries": retries,
        "repeats": repeats,
        "optuna_pareto_trials": best,
        "objectives": ["latency_s (minimize)", "size_bytes (minimize)", "quality (maximize)"],
        "optuna": optuna.__version__,
    }


def _winner_file(
    prepared: _Prepared, space_techniques: dict[str, Technique]
) -> Callable[[CandidateResult], Path]:
    """The winner's model file: where its worker wrote it, or rebuilt here from its knobs.

    A pipeline's winner is rebuilt from its stage's knobs first (the stage's training is
    seeded, so the model is the one its worker measured on the same library versions).
    """
    run = prepared.run
    stages = {s.name: s for s in prepared.stages}

    def find(winner: CandidateResult) -> Path:
        if winner.id == "fp32":
            return prepared.base_path
        local = run.output / str(winner.path) if winner.path else None
        if local is not None and local.is_file():
            return local
        technique = space_techniques[winner.technique]
        target = run.output / "candidates" / winner.id / "model.onnx"
        source, context = prepared.base_path, prepared.context
        if winner.stage:
            stage = stages.get(winner.stage)
            if stage is None:
                raise CompressionError(f"the winner's stage {winner.stage!r} is not built here")
            build = run.build_stage(stage, dict(winner.stage_knobs or {}), prepared.context)
            if build.path is None:
                raise CompressionError(f"the winner could not be rebuilt here: {build.error}")
            source = build.path
            context = dataclasses.replace(context, torch_model=build.model, workload=build.workload)
        technique.apply(source, winner.knobs, target, context)
        winner.path = str(target.relative_to(run.output))
        winner.notes.append("rebuilt here from its knobs; its worker measured it")
        return target

    return find


def _prepare_from(config: dict[str, Any], output: Path, say: Callable[[str], None]) -> _Prepared:
    stored = config["options"]
    options = SearchOptions(
        target=config["target"],
        batch_sizes=tuple(stored["batch_sizes"]),
        threads=stored["threads"],
        max_time_s=stored["max_time_s"],
        min_time_s=stored["min_time_s"],
        target_rel_ci=stored["target_rel_ci"],
        child_timeout_s=stored["child_timeout_s"],
        calibration_examples=stored["calibration_examples"],
        techniques=_builtin(stored["techniques"]),
        stages=_builtin_stages(stored.get("stages", [])),
    )
    options.check()
    gate = QualityGate(**config["gate"])
    return _prepare(config["model"], output, gate, options, say)


@dataclass
class _Opened:
    study: Any
    config: dict[str, Any]
    prepared: _Prepared
    url: str
    storage: Any


def _open_study(
    spec: str,
    output: Path,
    gate: QualityGate | None,
    options: SearchOptions,
    study_options: StudyOptions,
    say: Callable[[str], None],
) -> _Opened:
    """Create the study or load it (same settings), with the baseline measured here."""
    options.check()
    study_options.check()
    _optuna()
    output.mkdir(parents=True, exist_ok=True)
    url = storage_url(study_options.storage, output)
    name = study_options.study_name or f"as-optimize-{spec.replace(':', '-').replace('/', '-')}"
    storage = _open_storage(
        url,
        study_options.heartbeat_interval_s,
        study_options.grace_period_s,
        study_options.max_retry,
    )
    try:
        return _open_with(spec, output, gate, options, study_options, say, url, name, storage)
    except BaseException:
        _dispose(storage)
        raise


def _open_with(
    spec: str,
    output: Path,
    gate: QualityGate | None,
    options: SearchOptions,
    study_options: StudyOptions,
    say: Callable[[str], None],
    url: str,
    name: str,
    storage: Any,
) -> _Opened:
    optuna = _optuna()
    existing = _load_study(name, storage)
    given_gate, given_options = _gate_attr(gate), _options_attr(options)
    if existing is not None:
        config = existing.user_attrs.get("as_optimize")
        if config is None:
            raise CompressionInputError(
                f"study {name!r} in {redact_storage(url)} was not created by as-optimize"
            )
        differs = _same_settings(config, spec, given_gate, given_options)
        if differs:
            raise CompressionInputError(
                f"study {name!r} in {redact_storage(url)} was created with other settings "
                f"({differs}); give the same settings to resume it, or another --study"
            )
    prepared = _prepare(spec, output, gate, options, say)
    space = _space(prepared)
    stage_space = _stage_space(prepared)
    if not space:
        raise CompressionInputError(
            "no technique applies to this model: nothing to search (--search grid reports "
            "the reasons)"
        )
    with _quiet():
        if existing is None:
            trials = study_options.trials or 20
            created = optuna.create_study(
                study_name=name,
                storage=storage,
                directions=["minimize", "minimize", "maximize"],
                load_if_exists=True,
            )
            config = _config(
                spec,
                options.target,
                given_gate,
                given_options,
                study_options,
                space,
                trials,
                stage_space,
            )
            if "as_optimize" not in created.user_attrs:
                created.set_user_attr("as_optimize", config)
                created.set_metric_names(["latency_s", "size_bytes", "quality"])
            config = created.user_attrs.get("as_optimize", config)
            say(f"study {name!r} created in {redact_storage(url)}: {config['trials']} trials")
        else:
            config = existing.user_attrs["as_optimize"]
            if study_options.trials is not None and study_options.trials != config["trials"]:
                config = {**config, "trials": study_options.trials}
                existing.set_user_attr("as_optimize", config)
            done = sum(_counted(t) for t in existing.get_trials(deepcopy=False))
            say(f"study {name!r} resumed: {done} of {config['trials']} trials evaluated")
        loaded = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(config["sampler"], study_options.seed, int(config["trials"])),
        )
    if config["space"] != space:
        raise CompressionInputError(
            f"study {name!r} searches {config['space']!r}, but here the techniques offer "
            f"{space!r}; give the same techniques, or another --study"
        )
    if config.get("stage_space", {}) != stage_space:
        raise CompressionInputError(
            f"study {name!r} searches the stages {config.get('stage_space', {})!r}, but here "
            f"the stages offer {stage_space!r}; give the same stages, or another --study"
        )
    return _Opened(loaded, config, prepared, url, storage)


def create_study(
    spec: str,
    output: Path,
    gate: QualityGate | None = None,
    options: SearchOptions | None = None,
    study: StudyOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Create the study :func:`run_study` would, without working on it; its name.

    For workers started elsewhere (``as-optimize worker``); ``run_study`` with the same
    arguments later works on it too, or only reports once it holds its trials. The
    baseline is measured (in ``output``) to learn which techniques apply.
    """
    opened = _open_study(
        spec,
        Path(output),
        gate,
        options or SearchOptions(),
        study or StudyOptions(),
        progress or (lambda line: None),
    )
    _dispose(opened.storage)
    return str(opened.study.study_name)


def run_study(
    spec: str,
    output: Path,
    gate: QualityGate | None = None,
    options: SearchOptions | None = None,
    study: StudyOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> SearchReport:
    """Search the techniques' knobs with Optuna, then report from the study.

    Creates the study (or resumes it: same model, gate and measurement options), works on
    it as one worker until it holds ``study.trials`` evaluated trials, and writes the same
    ``report.json`` and ``winner/`` as :func:`run_search`, from every evaluated trial in
    the study (workers' too). ``report.json``'s ``study`` says which study and storage.

    Args:
        spec: The workload, a built-in name or ``pkg.module:factory``.
        output: The folder for ``report.json``, ``winner/``, ``candidates/`` (and
            ``study.db`` by default); it must not hold a report already.
        gate: The quality gate (the task's default when ``None``).
        options: How to measure; ``options.trials`` is not used (``study.trials`` is).
        study: Storage, study name, budget, sampler, heartbeats.
        progress: Called with a line of text as each step ends.

    Raises:
        CompressionInputError: A bad workload, option, output folder, or a study of that
            name with other settings.
        CompressionError: The baseline could not be evaluated, or the storage not opened.
        MissingExtraError: optuna is not installed (``as-optimize[search]``).
    """
    output = Path(output)
    _check_output(output)
    opened = _open_study(
        spec,
        output,
        gate,
        options or SearchOptions(),
        study or StudyOptions(),
        progress or (lambda line: None),
    )
    prepared = opened.prepared
    poll_s = (study or StudyOptions()).poll_s
    try:
        _Worker(opened.study, prepared, opened.config, poll_s).work()
        results = _results(opened.study, prepared)
        summary = _summary(opened.study, opened.url, opened.config)
    finally:
        _dispose(opened.storage)
    return _report(
        prepared,
        results,
        winner_file=_winner_file(prepared, {t.name: t for t in prepared.applicable}),
        study=summary,
    )


def run_worker(
    storage: str,
    study_name: str,
    output: Path,
    *,
    seed: int | None = None,
    poll_s: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Take trials from study ``study_name`` until it holds its budget; the trials done.

    The study (created by :func:`run_study`) says what to build and measure. The worker
    measures its own fp32 baseline in ``output/<study>-<host>-<pid>/`` and writes its
    candidates there.

    Raises:
        CompressionInputError: No such study, or one not created by as-optimize.
        CompressionError: The storage could not be opened or the baseline evaluated.
        MissingExtraError: optuna is not installed (``as-optimize[search]``).
    """
    _optuna()
    say = progress or (lambda line: None)
    url = storage_url(storage, Path(output))
    probe = _open_storage(url, 10, 60, 0)
    try:
        study = _load_study(study_name, probe)
        config = None if study is None else study.user_attrs.get("as_optimize")
    finally:
        _dispose(probe)
    if study is None:
        raise CompressionInputError(
            f"no study {study_name!r} in {redact_storage(url)}: create it with "
            f"as-optimize run MODEL --search optuna --storage URL --study {study_name}"
        )
    if config is None or config.get("schema_version") != STUDY_SCHEMA_VERSION:
        raise CompressionInputError(
            f"study {study_name!r} in {redact_storage(url)} was not created by this "
            "version of as-optimize"
        )
    folder = Path(output) / f"{study_name}-{socket.gethostname()}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    say(f"worker {_worker_id()} on study {study_name!r} in {redact_storage(url)}")
    if url.startswith("sqlite"):
        say(
            "note: SQLite takes one writer at a time; workers in parallel on it may fail "
            "with 'database is locked' (use PostgreSQL for several workers)"
        )
    prepared = _prepare_from(config, folder, say)
    missing = sorted(set(config["space"]) - {t.name for t in prepared.applicable})
    if missing:
        raise CompressionError(
            f"techniques {missing} of study {study_name!r} do not apply here (another "
            "as-optimize or onnxruntime version?)"
        )
    optuna = _optuna()
    storage_obj = _open_storage(
        url, int(config["heartbeat_interval_s"]), int(config["grace_period_s"]), config["max_retry"]
    )
    try:
        with _quiet():
            loaded = optuna.load_study(
                study_name=study_name,
                storage=storage_obj,
                sampler=_sampler(config["sampler"], seed, int(config["trials"])),
            )
        worker = _Worker(loaded, prepared, config, poll_s)
        worker.work()
        done = sum(_counted(t) for t in loaded.get_trials(deepcopy=False))
    finally:
        _dispose(storage_obj)
    say(
        f"study {study_name!r} holds {done} of {config['trials']} trials; "
        f"this worker evaluated {worker.evaluated}"
    )
    return worker.evaluated
