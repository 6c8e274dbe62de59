"""The Python API that mirrors the command line: :func:`profile` and :func:`optimize`.

``as-optimize profile MODEL`` is ``profile(MODEL)``; ``as-optimize run MODEL --repo DIR``
is ``optimize(MODEL, repo=DIR)``, with the same options as keyword arguments and the same
defaults. The command line calls these two functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from as_optimize.compress._handoff import Deployment, HandOff, hand_off, resolve
from as_optimize.compress._optuna import StudyOptions, run_study
from as_optimize.compress._pipeline import TorchStage, default_stages
from as_optimize.compress._profile import ModelProfile, profile_workload
from as_optimize.compress._report import write_report
from as_optimize.compress._search import (
    CandidateResult,
    QualityGate,
    SearchOptions,
    SearchReport,
    run_search,
)
from as_optimize.compress._techniques import Technique, available_techniques
from as_optimize.exceptions import CompressionInputError

__all__ = ["OptimizeResult", "optimize", "profile"]


def profile(
    model: str,
    *,
    large_batch: int = 64,
    threads: int = 1,
    ridge: float | None = None,
) -> ModelProfile:
    """Profile ``model`` (``as-optimize profile``): what it is made of and where time goes.

    Args:
        model: A built-in workload (``digits-cnn``, ``mlp``, ``minilm``) or
            ``pkg.module:factory``.
        large_batch: The larger batch for activation memory and arithmetic intensity.
        threads: torch threads for the timed passes.
        ridge: The machine's ridge point in FLOP/byte; measured when ``None``.

    Returns:
        The profile (:class:`ModelProfile`; ``model_dump_json()`` is ``--json``).

    Raises:
        CompressionInputError: A bad workload or option.
        MissingExtraError: The ``compress`` extra is not installed.
    """
    return profile_workload(
        model, large_batch=large_batch, threads=threads, ridge_flops_per_byte=ridge
    )


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`optimize` found and wrote.

    Attributes:
        report: The search's report (also ``output/report.json``).
        output: The output folder.
        winner: The winner's record in the report (the fp32 ONNX baseline when no
            candidate passing the gate beat it).
        winner_file: The winning model's file (``output/winner/model.onnx``); ``None``
            when the winner has no file of its own (eager torch, the reference of a
            target other than ``cpu``, when no candidate beat it).
        deployment: The version written to the model repository; ``None`` without
            ``repo``.
    """

    report: SearchReport
    output: Path
    winner: CandidateResult
    winner_file: Path | None
    deployment: Deployment | None = None


#: ``optimize``'s and ``as-optimize run``'s time budget for trying candidates, in seconds:
#: a run of a built-in workload ends within 10 minutes on a 2-core machine.
DEFAULT_TIME_BUDGET_S = 420.0


def optimize(
    model: str,
    *,
    output: Path = Path("as-optimize-out"),
    target: str = "cpu",
    max_accuracy_drop: float | str | None = None,
    min_cosine: float | None = None,
    max_size_ratio: float | None = None,
    trials: int | None = None,
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_S,
    objective: str = "latency",
    search: str = "grid",
    storage: str | None = None,
    study: str | None = None,
    sampler: str = "tpe",
    seed: int | None = None,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    calibration_examples: int | None = None,
    batch_sizes: Sequence[int] = (1,),
    threads: int | None = None,
    max_time_s: float = 2.0,
    techniques: list[Technique] | None = None,
    technique_names: Sequence[str] | None = None,
    stages: list[TorchStage] | None = None,
    stage_names: Sequence[str] | None = None,
    repo: Path | None = None,
    name: str | None = None,
    version: str | None = None,
    export: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> OptimizeResult:
    """Compress ``model`` under a quality gate and keep the best (``as-optimize run``).

    Builds the fp32 ONNX baseline and the candidates, measures each in a child process,
    gates, picks the winner and writes ``output`` (see :func:`run_search` and
    :func:`run_study`); with ``repo``, writes the winner into that as-deploy model
    repository as a new version of ``name`` with its provenance (:func:`hand_off`).

    Args:
        model: A built-in workload (``digits-cnn``, ``mlp``, ``minilm``) or
            ``pkg.module:factory``.
        output: The folder for ``report.json``, ``winner/`` and ``candidates/``; it must
            not hold a report already.
        target: Where the models are meant to run: ``cpu``, ``cuda``, ``mps``,
            ``coreml`` or ``tflite`` (see the README's "Targets").
        max_accuracy_drop: Accuracy points a classifier may lose (``1.0`` or ``"1pt"``).
        min_cosine: The mean cosine similarity to the fp32 outputs a candidate must reach.
        max_size_ratio: The largest size on disk a candidate may have, as a fraction of
            the reference's (``--max-size``); the quality limit still applies.
        trials: grid: at most this many candidates; optuna: the settings the study must
            evaluate.
        time_budget_s: grid: no candidate is started after this many seconds of
            trying them (those left are reported "not tried"); ``None`` or 0: no limit.
        objective: The winner among the models that pass the gate: ``latency`` (the
            fastest; of statistically tied ones, the smallest), ``size`` (the smallest)
            or ``memory`` (the least resident memory once loaded and run).
        search: ``grid`` (every knob setting in turn) or ``optuna``.
        storage: optuna: the study's storage (a URL or an SQLite file path).
        study: optuna: the study's name.
        sampler: optuna: ``tpe``, ``nsga2`` or ``random``.
        seed: The sampler's seed (optuna), and the seed techniques and stages get
            (0 when ``None``).
        heartbeat_interval: optuna: seconds between a worker's heartbeats.
        grace_period: optuna: a trial silent this long is failed and retried (seconds).
        calibration_examples: Examples set aside to calibrate on (never scored on).
        batch_sizes: Batch sizes to measure; the first ranks.
        threads: Runtime threads; every CPU available when ``None``.
        max_time_s: Seconds of sampling per measurement, at most.
        techniques: The techniques to try; every available one
            (:func:`available_techniques`) when ``None``.
        technique_names: Keep only the techniques of these names (``--technique``);
            all when ``None``.
        stages: The torch stages pipelines start with; the available built-in ones
            (:func:`default_stages`) when ``None``. With ``search="optuna"`` the study
            searches their knobs too: each trial is a technique's setting, alone or
            after one stage's.
        stage_names: Keep only the stages of these names (``--stage``); an empty
            sequence for none (``--no-stages``); all when ``None``.
        repo: An as-deploy model repository to write the winner into; ``None``: none.
        name: The model's name in ``repo``; the workload's when ``None``.
        version: The version to write; the next number when ``None``.
        export: With ``repo``, also store the workload's plain fp32 exports in these
            formats (``coreml``, ``tflite``) as ``<name>-<format>``, same version.
        progress: Called with a line of text as each step ends.

    Returns:
        The report, the winner and, with ``repo``, the version written.

    Raises:
        CompressionInputError: A bad workload, option, output folder, name or version
            (checked before the search where it can be).
        CompressionError: The baseline could not be exported or evaluated; with ``repo``,
            no candidate passed the gate (nothing is written to ``repo``; ``output``
            holds the report) or the winner failed the parity check.
        MissingExtraError: An extra the options need is not installed (``deploy`` for
            ``repo``, ``search`` for optuna).
    """
    if search not in ("grid", "optuna"):
        raise CompressionInputError(f"--search {search!r} is not one of grid, optuna")
    drop = (
        QualityGate.parse_points(max_accuracy_drop)
        if isinstance(max_accuracy_drop, str)
        else max_accuracy_drop
    )
    gate = QualityGate(max_accuracy_drop=drop, min_cosine=min_cosine, max_size_ratio=max_size_ratio)
    chosen_techniques = _pick(
        "--technique",
        techniques if techniques is not None else available_techniques(),
        technique_names,
    )
    chosen_stages = _pick(
        "--stage", stages if stages is not None else default_stages(), stage_names
    )
    options = SearchOptions(
        target=target,
        batch_sizes=tuple(batch_sizes),
        trials=trials if search == "grid" else None,
        time_budget_s=time_budget_s or None,
        objective=objective,
        threads=threads,
        max_time_s=max_time_s,
        calibration_examples=calibration_examples,
        techniques=chosen_techniques,
        stages=chosen_stages,
        seed=seed or 0,
    )
    if export and repo is None:
        raise CompressionInputError(
            "--export needs --repo: the exports are stored beside the winner"
        )
    handoff = None if repo is None else HandOff(Path(repo), name, version)
    if handoff is not None:
        options.check()
        # A bad name, an existing version or a missing exporter fails before the search.
        resolve(model, handoff, export)
    output = Path(output)
    if search == "optuna":
        study_options = StudyOptions(
            storage=storage,
            study_name=study,
            trials=trials,
            sampler=sampler,
            seed=seed,
            heartbeat_interval_s=heartbeat_interval,
            grace_period_s=grace_period,
        )
        report = run_study(model, output, gate, options, study_options, progress=progress)
    else:
        report = run_search(model, output, gate, options, progress=progress)
    write_report(report, output)
    winner = next(c for c in [report.baseline, *report.candidates] if c.id == report.winner)
    deployment = (
        None
        if handoff is None
        else hand_off(model, report, output, handoff, export=export, progress=progress)
    )
    return OptimizeResult(
        report=report,
        output=output,
        winner=winner,
        winner_file=output / report.winner_path if report.winner_path else None,
        deployment=deployment,
    )


_Named = TypeVar("_Named", Technique, TorchStage)


def _pick(option: str, available: list[_Named], names: Sequence[str] | None) -> list[_Named]:
    """The items of ``available`` named in ``names`` (all when ``None``), in their order.

    Raises:
        CompressionInputError: A name that is not among ``available``.
    """
    if names is None:
        return list(available)
    known = [item.name for item in available]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CompressionInputError(
            f"{option} {', '.join(unknown)}: not among the available ones "
            f"({', '.join(known) or 'none'})"
        )
    return [item for item in available if item.name in names]
