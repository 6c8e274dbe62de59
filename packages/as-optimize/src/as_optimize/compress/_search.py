"""``as-optimize run``: fp32 baseline, candidates, measurement, quality gate, Pareto front.

For a workload and a target (:func:`~as_optimize.compress._runtimes.plan_target`),
:func:`run_search` measures eager torch fp32 on the target's device, exports the fp32
ONNX baseline (as as-bench's ``onnxruntime`` backend does), builds one candidate per
technique and knob setting (techniques of the target's runtimes only) and pipelines (a
torch stage, then an ONNX technique: :mod:`as_optimize.compress._pipeline`), evaluates
every model in a child process of its own chosen by its runtime (session open, outputs
on the scoring data, latency with as-bench's engine), scores each against the reference
(fp32 ONNX on ``cpu``, eager torch fp32 on the device elsewhere) and the workload's
labels, keeps those that pass the quality gate, and picks the winner on the Pareto front
of latency, size and quality. The winner and a JSON report are written to the output
folder.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from as_core.extras import require
from as_core.fs import write_text_atomic
from as_core.runtime import available_cpus
from as_optimize.compress._data import TrainingData
from as_optimize.compress._pipeline import TorchStage, default_stages
from as_optimize.compress._runtimes import (
    TargetPlan,
    child_module,
    evaluator_available,
    plan_target,
)
from as_optimize.compress._techniques import (
    ApplyContext,
    ModelFacts,
    OrtStaticInt8,
    Technique,
    as_float32,
    available_techniques,
)
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "CandidateResult",
    "QualityGate",
    "SearchOptions",
    "SearchReport",
    "run_search",
]

Array = npt.NDArray[Any]

#: The version of ``report.json``'s layout.
REPORT_SCHEMA_VERSION = 2

#: What ``--objective`` may choose the winner by.
OBJECTIVES = ("latency", "size", "memory")

Status = Literal["baseline", "passed", "rejected", "not applicable", "not measured", "not tried"]

#: Calibration (and training) examples set aside for torch stages when no technique asks.
STAGE_EXAMPLES = 64


@dataclass(frozen=True)
class QualityGate:
    """What a candidate must keep, compared with the fp32 ONNX baseline.

    Attributes:
        max_accuracy_drop: Accuracy points (0-100 scale) a classifier may lose on the
            scoring data; ``None`` for no accuracy limit.
        min_cosine: The mean cosine similarity between a candidate's outputs and the fp32
            baseline's that it must reach; ``None`` for no cosine limit.
        max_size_ratio: The largest size on disk a candidate may have, as a fraction of
            the reference's (the fp32 ONNX model on ``cpu``); ``None`` for no limit. Not a
            quality limit: the task's default quality limit still applies beside it.
    """

    max_accuracy_drop: float | None = None
    min_cosine: float | None = None
    max_size_ratio: float | None = None

    def __post_init__(self) -> None:
        """Refuse limits that cannot be met or mean nothing."""
        drop = self.max_accuracy_drop
        if drop is not None and not (math.isfinite(drop) and 0 <= drop <= 100):
            raise CompressionInputError(
                f"--max-accuracy-drop must be between 0 and 100 points, not {drop}"
            )
        cosine = self.min_cosine
        if cosine is not None and not (math.isfinite(cosine) and -1 <= cosine <= 1):
            raise CompressionInputError(f"--min-cosine must be between -1 and 1, not {cosine}")
        size = self.max_size_ratio
        if size is not None and not (math.isfinite(size) and size > 0):
            raise CompressionInputError(
                f"--max-size must be a positive fraction of the fp32 model's size, not {size}"
            )

    @staticmethod
    def parse_points(text: str) -> float:
        """``"1pt"``, ``"0.5pt"`` or ``"1"`` as accuracy points.

        Raises:
            CompressionInputError: Not a number of points.
        """
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(pts?|points?)?\s*", text)
        if match is None:
            raise CompressionInputError(
                f"--max-accuracy-drop {text!r} is not a number of accuracy points "
                "(write 1pt or 0.5pt)"
            )
        return float(match.group(1))

    def for_task(self, task: str, has_labels: bool) -> QualityGate:
        """The gate for a task: the limits given, or the default one for the task.

        Classifiers with labels default to at most 1 point of accuracy lost; every other
        model to a mean cosine of at least 0.99 against the fp32 outputs.

        Raises:
            CompressionInputError: An accuracy limit for a model without class labels.
        """
        if self.max_accuracy_drop is not None and not (task == "classification" and has_labels):
            raise CompressionInputError(
                f"--max-accuracy-drop needs a classifier with labelled data; this workload's "
                f"task is {task!r}{'' if has_labels else ' without data'}: use --min-cosine"
            )
        if self.max_accuracy_drop is not None or self.min_cosine is not None:
            return self
        if task == "classification" and has_labels:
            return QualityGate(max_accuracy_drop=1.0, max_size_ratio=self.max_size_ratio)
        return QualityGate(min_cosine=0.99, max_size_ratio=self.max_size_ratio)

    def describe(self) -> str:
        """The gate in words."""
        parts = []
        if self.max_accuracy_drop is not None:
            parts.append(f"accuracy drop <= {self.max_accuracy_drop:g} pt")
        if self.min_cosine is not None:
            parts.append(f"mean cosine vs fp32 >= {self.min_cosine:g}")
        if self.max_size_ratio is not None:
            parts.append(f"size <= {self.max_size_ratio:g} of the reference's")
        return " and ".join(parts) or "none"


@dataclass
class SearchOptions:
    """How :func:`run_search` searches and measures.

    Attributes:
        target: Where the models are meant to run: ``cpu``, ``cuda``, ``mps``, ``coreml``
            or ``tflite`` (see :func:`~as_optimize.compress._runtimes.plan_target`).
        batch_sizes: Batch sizes to measure; the first one ranks the candidates.
        trials: At most this many candidates (knob settings), taken in turn from each
            technique; ``None`` for all of them.
        threads: ONNX Runtime intra-op threads and torch threads; ``None``: every CPU
            this process may use.
        max_time_s: as-bench's sampling limit per measurement.
        target_rel_ci: as-bench's convergence target (half-width of the median's CI).
        min_time_s: as-bench's minimum sampling time per measurement.
        child_timeout_s: A candidate's evaluation is killed and rejected after this long.
        calibration_examples: Examples set aside for calibration (taken from the start of
            the workload's data and never scored on); ``None``: the largest calibration
            size asked for, at most half the data.
        techniques: The techniques to try; every available one by default
            (:func:`available_techniques`: ONNX Runtime's, then torch's, Core ML's and
            LiteRT's when installed). Those whose
            ``targets`` do not include the target, or whose runtime the target does not
            measure, are listed as not applicable with the reason.
        stages: The torch stages pipelines start with (:func:`default_stages`). In the
            grid, each setting of each stage is tried alone (exported, ONNX Runtime fp32)
            and then with each technique's first (most promising) setting; a study
            (:func:`~as_optimize.compress.run_study`) searches the stages' knobs with
            the techniques'.
        seed: Seed handed to techniques and stages (``ApplyContext.seed``).
        time_budget_s: No candidate is started once this many seconds have passed since
            the first one was; those left are reported "not tried" with the reason.
            ``None``: no limit. The schedule puts every technique's most promising
            setting first, so a budget cuts the least promising ones.
        objective: What the winner is chosen by among the models that pass the gate:
            ``latency`` (the fastest at the first batch size; of statistically tied ones,
            the smallest), ``size`` (the smallest on disk; of equal ones, the fastest) or
            ``memory`` (the least resident memory once loaded and run on the scoring
            data, :attr:`CandidateResult.memory_bytes`, of the models where it was
            measured: ONNX Runtime's child measures it).
    """

    target: str = "cpu"
    batch_sizes: Sequence[int] = (1,)
    trials: int | None = None
    threads: int | None = None
    max_time_s: float = 2.0
    target_rel_ci: float = 0.02
    min_time_s: float = 0.2
    child_timeout_s: float = 600.0
    calibration_examples: int | None = None
    techniques: list[Technique] = field(default_factory=available_techniques)
    stages: list[TorchStage] = field(default_factory=default_stages)
    seed: int = 0
    time_budget_s: float | None = None
    objective: str = "latency"

    def plan(self) -> TargetPlan:
        """What the target measures on this machine.

        Raises:
            CompressionInputError: An unknown target, or its hardware is missing.
        """
        return plan_target(self.target)

    def check(self) -> None:
        """Refuse out-of-range values, naming the option.

        Raises:
            CompressionInputError: A value is out of range.
        """
        self.plan()
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise CompressionInputError(
                f"--batch-size must be at least 1, not {list(self.batch_sizes)}"
            )
        if self.trials is not None and self.trials < 1:
            raise CompressionInputError(f"--trials must be at least 1, not {self.trials}")
        if self.threads is not None and self.threads < 1:
            raise CompressionInputError(f"--threads must be at least 1, not {self.threads}")
        if self.objective not in OBJECTIVES:
            raise CompressionInputError(
                f"--objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}"
            )
        budget = self.time_budget_s
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise CompressionInputError(
                f"--time-budget must be a positive number of seconds, not {budget}"
            )
        for name in ("max_time_s", "min_time_s", "target_rel_ci", "child_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise CompressionInputError(f"{name} must be a positive number, not {value}")
        if self.calibration_examples is not None and self.calibration_examples < 1:
            raise CompressionInputError(
                f"calibration_examples must be at least 1, not {self.calibration_examples}"
            )
        names = [t.name for t in self.techniques]
        if len(set(names)) != len(names):
            raise CompressionInputError(f"technique names must be unique, not {names}")
        stage_names = [s.name for s in self.stages]
        if len(set(stage_names)) != len(stage_names):
            raise CompressionInputError(f"stage names must be unique, not {stage_names}")


class Latency(BaseModel):
    """One model's latency at one batch size, from as-bench's engine (seconds per call)."""

    median_s: float
    ci_low_s: float
    ci_high_s: float
    iqr_s: float
    samples: int
    converged: bool
    warnings: list[str] = []


class Quality(BaseModel):
    """A model's quality on the scoring data, and its agreement with the fp32 ONNX model.

    Attributes:
        accuracy: Accuracy in points (0-100) against the labels, for classifiers with data.
        accuracy_drop: fp32 ONNX accuracy minus this one, in points.
        mean_cosine: Mean cosine similarity of each row's output with the fp32 ONNX output.
        min_cosine: The lowest of those.
        max_abs_error: The largest absolute difference from the fp32 ONNX outputs.
        top1_agreement: Share of rows whose arg-max matches the fp32 ONNX model's.
    """

    accuracy: float | None = None
    accuracy_drop: float | None = None
    mean_cosine: float
    min_cosine: float
    max_abs_error: float
    top1_agreement: float | None = None


class CandidateResult(BaseModel):
    """One model of the search: the baseline or a candidate, and what became of it.

    ``stage`` and ``stage_knobs`` name the torch stage a pipeline started with (``None``
    and ``{}`` for a technique alone); ``runtime`` is the runtime it was evaluated on.
    """

    id: str
    technique: str
    knobs: dict[str, Any]
    status: Status
    reason: str
    runtime: str = "onnxruntime"
    stage: str | None = None
    stage_knobs: dict[str, Any] = {}
    path: str | None = None
    size_bytes: int | None = None
    memory_bytes: int | None = None
    build_s: float | None = None
    session_open_s: float | None = None
    latency: dict[str, Latency] = {}
    quality: Quality | None = None
    speedup_vs_fp32_onnx: float | None = None
    speedup_vs_eager: float | None = None
    pareto: bool = False
    notes: list[str] = []


class SearchReport(BaseModel):
    """``report.json``: everything the search measured and decided."""

    schema_version: int = REPORT_SCHEMA_VERSION
    workload: str
    task: str
    target: str
    device: str = "cpu"
    runtimes: list[str] = ["onnxruntime"]
    reference: str = "fp32 ONNX"
    target_notes: list[str] = []
    gate: str
    scoring_data: str
    scoring_examples: int
    calibration_examples: int
    batch_sizes: list[int]
    threads: int
    versions: dict[str, str]
    eager: dict[str, Any]
    baseline: CandidateResult
    candidates: list[CandidateResult]
    pareto: list[str]
    winner: str
    winner_reason: str
    winner_path: str
    elapsed_s: float
    study: dict[str, Any] | None = None


@dataclass
class _Scoring:
    inputs: tuple[Array, ...]
    labels: Array | None
    name: str
    calibration: tuple[Array, ...] | None
    training: TrainingData | None = None


def _split_data(workload: Any, options: SearchOptions) -> _Scoring:
    dataset = workload.dataset
    if dataset is None:
        inputs = as_float32(workload.inputs(64))
        return _Scoring(inputs, None, "64 example inputs of the workload (no data set)", None)
    rows = len(dataset)
    wanted = options.calibration_examples
    if wanted is None:
        sizes = [
            int(k.get("size", 0))
            for t in options.techniques
            if isinstance(t, OrtStaticInt8)
            for k in t.knobs()
        ]
        if options.stages:
            sizes.append(STAGE_EXAMPLES)
        wanted = min(max(sizes, default=0), rows // 2)
    if wanted >= rows:
        raise CompressionInputError(
            f"calibration_examples {wanted} leaves none of the {rows} examples to score on"
        )
    inputs = as_float32(tuple(a[wanted:] for a in dataset.inputs))
    calibration = as_float32(tuple(a[:wanted] for a in dataset.inputs)) if wanted else None
    labels = dataset.targets[wanted:] if workload.task == "classification" else None
    name = f"{dataset.name}: the last {rows - wanted} examples ({wanted} before them calibrate)"
    return _Scoring(inputs, labels, name, calibration, _training(workload, calibration, wanted))


def _training(
    workload: Any, calibration: tuple[Array, ...] | None, wanted: int
) -> TrainingData | None:
    """The workload's training split when it has one, else the calibration examples."""
    own = getattr(workload, "train", None)
    if own is not None and getattr(own, "inputs", None):
        labels = own.targets if workload.task == "classification" else None
        return TrainingData(as_float32(tuple(own.inputs)), labels, f"{own.name} (training split)")
    if calibration is None:
        return None
    dataset = workload.dataset
    labels = dataset.targets[:wanted] if workload.task == "classification" else None
    return TrainingData(
        calibration, labels, f"{dataset.name}: the first {wanted} examples (set aside)"
    )


def _folder_size(path: Path) -> int:
    """A candidate's size on disk.

    An ``.onnx`` file counts with its external-data files beside it (everything in its
    folder but the evaluation's scratch files); a folder (``.mlpackage``) counts every
    file under it; another file counts alone.
    """
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if path.suffix != ".onnx":
        return path.stat().st_size
    return sum(
        p.stat().st_size
        for p in path.parent.iterdir()
        if p.is_file() and not p.name.startswith("eval-")
    )


def _op_types(path: Path) -> frozenset[str]:
    require("onnx", "compress", error=MissingExtraError)
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return frozenset(node.op_type for node in model.graph.node)


@dataclass
class _ChildOutcome:
    ok: bool
    reason: str
    outputs: Array | None = None
    result: dict[str, Any] | None = None
    unavailable: str | None = None


def evaluate_in_child(
    model: Path,
    folder: Path,
    input_names: Sequence[str],
    scoring: tuple[Array, ...],
    bench: dict[int, tuple[Array, ...]],
    options: SearchOptions,
    chunk: int,
    *,
    runtime: str = "onnxruntime",
    device: str = "cpu",
    workload_spec: str = "",
) -> _ChildOutcome:
    """Open, run and measure ``model`` in a fresh Python process; a crash is an outcome.

    ``runtime`` picks the evaluator (:func:`~as_optimize.compress._runtimes.child_module`);
    the spec follows the contract in :mod:`as_optimize.compress._child`. A child that
    answers ``{"unavailable": reason}`` gives an outcome with ``unavailable`` set.
    """
    module = child_module(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    eval_inputs = folder / "eval-inputs.npz"
    arrays: dict[str, Any] = {f"in{i}": a for i, a in enumerate(scoring)}
    np.savez(eval_inputs, **arrays)
    bench_inputs = folder / "eval-bench.npz"
    batches: dict[str, Any] = {
        f"b{b}_in{i}": a for b, inputs in bench.items() for i, a in enumerate(inputs)
    }
    np.savez(bench_inputs, **batches)
    outputs_path = folder / "eval-outputs.npy"
    result_path = folder / "eval-result.json"
    spec = {
        "runtime": runtime,
        "artifact": str(model),
        "model": str(model),
        "workload": workload_spec,
        "device": device,
        "input_names": list(input_names),
        "eval_inputs": str(eval_inputs),
        "chunk": chunk,
        "bench_inputs": str(bench_inputs),
        "batch_sizes": list(bench),
        "threads": options.threads,
        "measure": {
            "max_time_s": options.max_time_s,
            "min_time_s": min(options.min_time_s, options.max_time_s),
            "target_rel_ci": options.target_rel_ci,
            "remeasure_noisy": 0,
        },
        "outputs": str(outputs_path),
        "result": str(result_path),
    }
    spec_path = folder / "eval-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, str(spec_path)],
            capture_output=True,
            text=True,
            timeout=options.child_timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _ChildOutcome(
            False, f"its evaluation did not finish within {options.child_timeout_s:g} s"
        )
    finally:
        for scratch in (eval_inputs, bench_inputs, spec_path):
            scratch.unlink(missing_ok=True)
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = tail[-1] if tail else "no message"
        if done.returncode < 0:
            name = signal.Signals(-done.returncode).name
            return _ChildOutcome(
                False, f"the runtime crashed in its child process ({name}); last output: {last}"
            )
        return _ChildOutcome(
            False, f"its child process failed (exit status {done.returncode}): {last}"
        )
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if isinstance(result, dict) and "unavailable" in result:
            return _ChildOutcome(
                False, str(result["unavailable"]), unavailable=str(result["unavailable"])
            )
        outputs = np.load(outputs_path)
    except (OSError, ValueError) as exc:
        return _ChildOutcome(False, f"its child process wrote no usable result: {exc}")
    finally:
        outputs_path.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)
    return _ChildOutcome(True, "evaluated", outputs, result)


def _quality(outputs: Array, reference: Array, labels: Array | None, task: str) -> Quality:
    if outputs.shape != reference.shape:
        raise CompressionError(
            f"outputs of shape {outputs.shape} differ from the fp32 model's {reference.shape}"
        )
    a = outputs.reshape(outputs.shape[0], -1).astype(np.float64)
    b = reference.reshape(reference.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1), 0.0)
    cosine = np.nan_to_num(cosine, nan=-1.0)
    quality = Quality(
        mean_cosine=float(cosine.mean()),
        min_cosine=float(cosine.min()),
        max_abs_error=float(np.nan_to_num(np.abs(a - b), nan=np.inf).max()),
    )
    if task == "classification":
        quality.top1_agreement = float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
        if labels is not None:
            quality.accuracy = float((a.argmax(axis=1) == labels).mean() * 100.0)
    return quality


def _gate(gate: QualityGate, quality: Quality, size_ratio: float | None = None) -> tuple[bool, str]:
    failures = []
    if gate.max_accuracy_drop is not None and quality.accuracy_drop is not None:
        if quality.accuracy_drop > gate.max_accuracy_drop + 1e-9:
            failures.append(
                f"accuracy {quality.accuracy:.2f}% is {quality.accuracy_drop:.2f} pt below "
                f"fp32's, over the {gate.max_accuracy_drop:g} pt allowed"
            )
    if gate.min_cosine is not None and quality.mean_cosine < gate.min_cosine:
        failures.append(
            f"mean cosine vs fp32 {quality.mean_cosine:.4f} is under {gate.min_cosine:g}"
        )
    limit = gate.max_size_ratio
    if limit is not None and size_ratio is not None and size_ratio > limit:
        failures.append(
            f"its size is {size_ratio:.3f} of the reference's, over the {limit:g} allowed"
        )
    if failures:
        return False, "fails the quality gate: " + "; ".join(failures)
    return True, f"passes the quality gate ({gate.describe()})"


@dataclass
class _Item:
    """One candidate to try: a technique's setting, alone or after a torch stage's.

    ``technique`` is ``None`` for a stage's model alone (exported, ONNX Runtime fp32).
    """

    technique: Technique | None
    knobs: dict[str, Any]
    note: str = ""
    stage: TorchStage | None = None
    stage_knobs: dict[str, Any] = field(default_factory=dict)


def _technique_queue(technique: Technique, calibration: int) -> list[_Item]:
    """A technique's settings, a calibration ``size`` lowered to the examples set aside."""
    queue: list[_Item] = []
    seen: list[dict[str, Any]] = []
    for knobs in technique.knobs():
        note = ""
        size = knobs.get("size")
        if isinstance(size, int) and calibration and size > calibration:
            knobs = {**knobs, "size": calibration}
            note = f"calibration size {size} lowered to the {calibration} examples set aside"
        if knobs not in seen:
            seen.append(knobs)
            queue.append(_Item(technique, knobs, note))
    return queue


def _round_robin(queues: list[list[_Item]]) -> list[_Item]:
    order: list[_Item] = []
    queues = [list(q) for q in queues]
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def _schedule(
    techniques: Sequence[Technique],
    trials: int | None,
    calibration: int,
    stages: Sequence[TorchStage] = (),
    *,
    stage_alone: bool = True,
) -> list[_Item]:
    """The candidates to try, in order, at most ``trials`` of them.

    1. The first (most promising) setting of each technique, so a small budget tries
       every technique alone.
    2. The first setting of each stage: its model alone (when ``stage_alone``: exported
       and run in ONNX Runtime fp32), then followed by each technique's first setting,
       taken in turn from each stage.
    3. The techniques' other settings, in turn from each technique.
    4. The stages' other settings, each alone and followed by each technique's first
       setting, in turn from each stage.

    A calibration ``size`` above the ``calibration`` examples set aside is lowered to that
    number (with a note); settings that become equal are tried once.
    """
    queues = [_technique_queue(t, calibration) for t in techniques]
    firsts = [q[0] for q in queues if q]
    rests = [q[1:] for q in queues]

    def pipelines(stage: TorchStage, stage_knobs: dict[str, Any]) -> list[_Item]:
        items = [_Item(None, {}, "", stage, stage_knobs)] if stage_alone else []
        items += [
            _Item(first.technique, first.knobs, first.note, stage, stage_knobs) for first in firsts
        ]
        return items

    stage_settings = [(stage, stage.knobs()) for stage in stages]
    first_pipelines = [pipelines(s, settings[0]) for s, settings in stage_settings if settings]
    other_pipelines = [
        [item for knobs in settings[1:] for item in pipelines(s, knobs)]
        for s, settings in stage_settings
    ]
    order = [
        *firsts,
        *_round_robin(first_pipelines),
        *_round_robin(rests),
        *_round_robin(other_pipelines),
    ]
    return order if trials is None else order[:trials]


def _knob_id(name: str, knobs: Mapping[str, Any]) -> str:
    """``name`` and its knob values as a short id, also a folder name."""
    parts = [name]
    for key, value in knobs.items():
        if key == "per_channel":
            parts.append("pc" if value else "pt")
        elif key == "keep_io_types":
            parts.append("io32" if value else "io16")
        elif isinstance(value, bool):
            parts.append(key.replace("_", "-") if value else f"no-{key.replace('_', '-')}")
        else:
            parts.append(re.sub(r"[^a-z0-9.]+", "-", str(value).lower()))
    return "-".join(parts)


def _candidate_id(technique: Technique, knobs: dict[str, Any]) -> str:
    """A short id, also a folder name: ``ort-static-int8-minmax-64-pc``."""
    return _knob_id(technique.name, knobs)


#: The name of a stage's model alone, exported and run in ONNX Runtime fp32.
STAGE_ALONE = "ort-fp32"


def _item_id(item: _Item) -> str:
    """``technique-knobs``, or ``stage-knobs+technique-knobs`` for a pipeline."""
    tail = STAGE_ALONE if item.technique is None else _knob_id(item.technique.name, item.knobs)
    if item.stage is None:
        return tail
    return f"{_knob_id(item.stage.name, item.stage_knobs)}+{tail}"


def _pareto(models: list[CandidateResult], batch: str) -> list[str]:
    """Ids of the models no other is at least as good as on all three counts and better on one."""

    def point(m: CandidateResult) -> tuple[float, float, float]:
        quality = m.quality
        assert quality is not None
        score = quality.accuracy if quality.accuracy is not None else quality.mean_cosine
        return (m.latency[batch].median_s, float(m.size_bytes or 0), -score)

    front = []
    for m in models:
        pm = point(m)
        dominated = any(
            all(x <= y for x, y in zip(point(o), pm, strict=True)) and point(o) != pm
            for o in models
            if o is not m
        )
        if not dominated:
            front.append(m.id)
    return front


def _memory_bytes(result: Mapping[str, Any]) -> int | None:
    """A child's ``memory_bytes``, when it measured one."""
    memory = result.get("memory_bytes")
    return memory if isinstance(memory, int) and memory >= 0 else None


def _pick_winner(
    models: list[CandidateResult],
    baseline: CandidateResult,
    batch: str,
    reference: str = "fp32 ONNX",
    objective: str = "latency",
) -> tuple[CandidateResult, str]:
    """The winner by ``objective`` among ``models`` (all passed the gate).

    ``latency``: the fastest; among those whose CIs overlap the fastest's, the smallest.
    ``size``: the smallest; of equal sizes, the fastest. ``memory``: the least memory
    taken by loading and running the model (of the models whose memory was measured;
    equal ones, the fastest). ``reference`` names the baseline in the reason (``fp32
    ONNX``, or eager torch fp32 on a device).
    """
    fastest = min(models, key=lambda m: m.latency[batch].median_s)
    top = fastest.latency[batch]
    tied = [m for m in models if m.latency[batch].ci_low_s <= top.ci_high_s]
    if objective == "size":
        tied = [min(models, key=lambda m: (m.size_bytes or 0, m.latency[batch].median_s))]
    measured = [m for m in models if m.memory_bytes is not None]
    if objective == "memory" and measured:
        tied = [min(measured, key=lambda m: (m.memory_bytes or 0, m.latency[batch].median_s))]
    winner = min(tied, key=lambda m: (m.size_bytes or 0, m.latency[batch].median_s))
    base = baseline.latency[batch]
    lat = winner.latency[batch]
    if winner is baseline:
        better = {"size": "smaller", "memory": "lighter in memory"}.get(objective, "faster")
        return winner, (
            f"no candidate passing the gate was {better} than the {reference} model at batch "
            f"{batch} (median {lat.median_s * 1e6:.1f} us)"
        )
    if objective == "size":
        how = "the smallest of the models that pass the gate (--objective size)"
    elif objective == "memory" and winner.memory_bytes is not None:
        how = (
            f"the least memory ({winner.memory_bytes / 2**20:.1f} MiB loaded and running) of "
            f"the {len(measured)} models that pass the gate and were measured (--objective "
            "memory)"
        )
    elif len(tied) > 1:
        how = (
            f"the smallest of the {len(tied)} models that pass the gate and are statistically "
            f"tied with the fastest at batch {batch} (95% CIs of the median overlap)"
        )
    else:
        how = f"the fastest at batch {batch} of the models that pass the gate"
    quality = winner.quality
    assert quality is not None
    kept = (
        f"accuracy {quality.accuracy:.2f}% ({quality.accuracy_drop:+.2f} pt lost)"
        if quality.accuracy is not None and quality.accuracy_drop is not None
        else f"mean cosine {quality.mean_cosine:.4f} vs fp32"
    )
    return winner, (
        f"{how}: median "
        f"{lat.median_s * 1e6:.1f} us (95% CI {lat.ci_low_s * 1e6:.1f}-{lat.ci_high_s * 1e6:.1f}),"
        f" {base.median_s / lat.median_s:.2f}x the {reference} model, "
        f"{(baseline.size_bytes or 0) / max(1, winner.size_bytes or 1):.2f}x smaller, {kept}"
    )


def _versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {}
    for dist in ("as-optimize", "as-bench", "onnxruntime", "onnx", "torch"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _check_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise CompressionInputError(f"output {output} exists and is not a folder")
    if (output / "report.json").exists():
        raise CompressionInputError(
            f"{output} already holds a report.json: give an empty or new output folder"
        )


def _latency(m: Any) -> Latency:
    stats = m.latency.stats
    return Latency(
        median_s=stats.median,
        ci_low_s=stats.ci_low,
        ci_high_s=stats.ci_high,
        iqr_s=stats.iqr,
        samples=stats.n,
        converged=m.converged,
        warnings=list(m.warnings),
    )


def _run_eager(
    torch_model: Any,
    scoring: _Scoring,
    bench: dict[int, tuple[Array, ...]],
    options: SearchOptions,
    device: str = "cpu",
) -> tuple[Array, dict[str, Any]]:
    """Eager PyTorch in this process on ``device``: its outputs on the scoring data and latency.

    ``torch_model`` itself stays on the CPU: another device gets a copy.
    """
    torch = require("torch", "compress", error=MissingExtraError)
    import as_bench
    from as_bench.export import torch_inputs

    measure_options = as_bench.MeasureOptions(
        max_time_s=options.max_time_s,
        min_time_s=min(options.min_time_s, options.max_time_s),
        target_rel_ci=options.target_rel_ci,
        remeasure_noisy=0,
    )
    model = torch_model if device == "cpu" else copy.deepcopy(torch_model).to(device)

    def on_device(arrays: tuple[Array, ...]) -> tuple[Any, ...]:
        return tuple(t.to(device) for t in torch_inputs(arrays))

    before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    latency: dict[str, Any] = {}
    try:
        with torch.inference_mode():
            out = model(*on_device(scoring.inputs))
            first = out[0] if isinstance(out, (tuple, list)) else out
            outputs = np.asarray(first.float().cpu().numpy())
            for b, arrays in bench.items():
                args = on_device(arrays)
                m = as_bench.measure(model, *args, device=device, options=measure_options)
                latency[str(b)] = _latency(m).model_dump()
    finally:
        torch.set_num_threads(before)
    return outputs, {"latency": latency, "device": device}


def _parameter_bytes(torch_model: Any) -> int:
    """The bytes of a torch model's parameters and buffers (its fp32 state)."""
    return int(sum(t.numel() * t.element_size() for t in torch_model.state_dict().values()))


@dataclass
class _StageBuild:
    """A stage setting's model, exported (built once, shared by its pipelines)."""

    model: Any = None
    workload: Any = None
    path: Path | None = None
    build_s: float = 0.0
    error: str = ""


@dataclass
class _Run:
    """The state of one search, shared by its steps."""

    workload: Any
    output: Path
    gate: QualityGate
    options: SearchOptions
    scoring: _Scoring
    bench: dict[int, tuple[Array, ...]]
    say: Callable[[str], None]
    chunk: int = 64
    reference: Array | None = None
    baseline: CandidateResult | None = None
    eager_first_s: float = 0.0
    plan: TargetPlan = field(default_factory=lambda: plan_target("cpu"))
    spec: str = ""
    dynamic: bool = True
    stage_builds: dict[str, _StageBuild] = field(default_factory=dict)

    @property
    def first(self) -> str:
        return str(next(iter(self.bench)))

    def export(self, workload: Any, folder: Path, what: str) -> tuple[Path, bool]:
        """``workload``'s torch model exported to ``folder/model.onnx`` as as-bench does."""
        import as_bench
        from as_bench.export import export_onnx

        try:
            return export_onnx(workload, max(self.bench), folder)
        except as_bench.MissingExtraError:
            raise
        except as_bench.AsBenchError as exc:
            raise CompressionError(f"exporting {what} to ONNX failed: {exc}") from exc

    def export_baseline(self) -> tuple[Path, float]:
        self.say("exporting the fp32 ONNX baseline")
        batch_sizes = list(self.bench)
        built = time.perf_counter()
        path, dynamic = self.export(
            self.workload, self.output / "candidates" / "fp32", repr(self.workload.name)
        )
        self.dynamic = dynamic
        if not dynamic:
            if len(batch_sizes) > 1:
                raise CompressionInputError(
                    f"{self.workload.name!r} exported with a static batch; give one --batch-size"
                )
            # Score in whole batches of the size baked into the file.
            self.chunk = batch_sizes[0]
            rows = self.scoring.inputs[0].shape[0] // self.chunk * self.chunk
            self.scoring.inputs = tuple(a[:rows] for a in self.scoring.inputs)
            if self.scoring.labels is not None:
                self.scoring.labels = self.scoring.labels[:rows]
        return path, time.perf_counter() - built

    def evaluate_baseline(
        self, path: Path, build_s: float, eager_outputs: Array, eager: dict[str, Any]
    ) -> CandidateResult:
        outcome = evaluate_in_child(
            path,
            path.parent,
            self.workload.input_names,
            self.scoring.inputs,
            self.bench,
            self.options,
            self.chunk,
            device=self.plan.device,
            workload_spec=self.spec,
        )
        if not outcome.ok or outcome.outputs is None or outcome.result is None:
            raise CompressionError(
                f"the fp32 ONNX baseline could not be evaluated: {outcome.reason}"
            )
        self.reference = reference = outcome.outputs
        labels = self.scoring.labels
        eager_outputs = eager_outputs[: reference.shape[0]]
        eager["accuracy"] = (
            float((eager_outputs.argmax(axis=1) == labels).mean() * 100.0)
            if labels is not None
            else None
        )
        eager["parity_fp32_onnx"] = _quality(
            eager_outputs, reference, labels, self.workload.task
        ).model_dump()
        quality = _quality(reference, reference, labels, self.workload.task)
        if quality.accuracy is not None:
            quality.accuracy_drop = 0.0
        baseline = CandidateResult(
            id="fp32",
            technique="fp32 ONNX (baseline)",
            knobs={},
            status="baseline",
            reason="the model every candidate is built from and compared with",
            path=str(path.relative_to(self.output)),
            size_bytes=_folder_size(path),
            build_s=build_s,
            session_open_s=outcome.result["session_open_s"],
            latency={k: Latency(**v) for k, v in outcome.result["latency"].items()},
            quality=quality,
            memory_bytes=_memory_bytes(outcome.result),
        )
        self.eager_first_s = eager["latency"][self.first]["median_s"]
        baseline.speedup_vs_fp32_onnx = 1.0
        baseline.speedup_vs_eager = self.eager_first_s / baseline.latency[self.first].median_s
        self.baseline = baseline
        self.say(
            f"fp32 ONNX: {baseline.latency[self.first].median_s * 1e6:.1f} us at batch "
            f"{self.first}, eager torch {self.eager_first_s * 1e6:.1f} us"
        )
        return baseline

    def eager_baseline(
        self, torch_model: Any, eager_outputs: Array, eager: dict[str, Any]
    ) -> CandidateResult:
        """Eager torch fp32 on the target's device as the reference (targets but ``cpu``)."""
        self.reference = reference = eager_outputs
        labels = self.scoring.labels
        quality = _quality(reference, reference, labels, self.workload.task)
        if quality.accuracy is not None:
            quality.accuracy_drop = 0.0
        eager["accuracy"] = quality.accuracy
        device = self.plan.device
        baseline = CandidateResult(
            id="eager",
            technique=f"eager torch fp32 on {device} (baseline)",
            knobs={},
            status="baseline",
            reason=(
                f"the reference on --target {self.plan.target}: every candidate's quality and "
                "speed are compared with it"
            ),
            runtime="torch",
            size_bytes=_parameter_bytes(torch_model),
            latency={k: Latency(**v) for k, v in eager["latency"].items()},
            quality=quality,
        )
        self.eager_first_s = eager["latency"][self.first]["median_s"]
        baseline.speedup_vs_eager = 1.0
        self.baseline = baseline
        self.say(
            f"eager torch fp32 on {device}: {self.eager_first_s * 1e6:.1f} us at batch "
            f"{self.first} (the reference)"
        )
        return baseline

    def try_candidate(
        self,
        technique: Technique,
        knobs: dict[str, Any],
        base: Path,
        context: ApplyContext,
        cid: str | None = None,
        *,
        stage: str | None = None,
        stage_knobs: dict[str, Any] | None = None,
    ) -> CandidateResult:
        """Build, evaluate (in its runtime's child process), score and gate one candidate.

        ``cid`` names the candidate and its folder under ``candidates/``; by default the
        technique and its knobs do. ``stage`` and ``stage_knobs`` record the torch stage
        ``base`` came from in a pipeline.
        """
        cid = cid or _candidate_id(technique, knobs)
        result = CandidateResult(
            id=cid,
            technique=technique.name,
            knobs=knobs,
            status="rejected",
            reason="",
            runtime=technique.runtime,
            stage=stage,
            stage_knobs=stage_knobs or {},
        )
        target = self.output / "candidates" / cid / "model.onnx"
        work = self.output / "work" / cid
        context = dataclasses.replace(context, work_dir=work)
        built = time.perf_counter()
        try:
            returned = technique.apply(base, knobs, target, context)
        except (CompressionError, CompressionInputError) as exc:
            result.reason = f"could not be built: {exc}"
            return result
        result.build_s = time.perf_counter() - built
        artifact = Path(returned) if returned is not None else target
        if not artifact.exists():
            result.reason = f"could not be built: {technique.name} wrote nothing at {artifact}"
            return result
        return self.evaluate(result, artifact)

    def evaluate(self, result: CandidateResult, artifact: Path) -> CandidateResult:
        """Size, evaluate, score and gate a built candidate; ``result`` updated."""
        result.path = str(artifact.relative_to(self.output))
        result.size_bytes = _folder_size(artifact)
        if not self.plan.measured:
            result.status = "not measured"
            result.reason = self.plan.why_not_measured
            return result
        outcome = evaluate_in_child(
            artifact,
            artifact.parent,
            self.workload.input_names,
            self.scoring.inputs,
            self.bench,
            self.options,
            self.chunk,
            runtime=result.runtime,
            device=self.plan.device,
            workload_spec=self.spec,
        )
        if outcome.unavailable is not None:
            result.status = "not measured"
            result.reason = outcome.unavailable
            return result
        if not outcome.ok or outcome.outputs is None or outcome.result is None:
            result.status = "rejected"
            result.reason = outcome.reason
            return result
        result.session_open_s = outcome.result.get("session_open_s")
        result.memory_bytes = _memory_bytes(outcome.result)
        weights = outcome.result.get("weight_bytes")
        if isinstance(weights, int) and weights > 0 and artifact.is_dir():
            # A torch candidate's folder holds fp32 weights to rebuild it from; its size
            # is what the transformed module's weights take once built.
            result.size_bytes = weights
            result.notes.append(
                f"size: the built module's weights in memory ({weights} bytes); its folder "
                f"holds fp32 weights to rebuild it ({_folder_size(artifact)} bytes)"
            )
        result.latency = {k: Latency(**v) for k, v in outcome.result["latency"].items()}
        assert self.reference is not None and self.baseline is not None
        try:
            quality = _quality(
                outcome.outputs, self.reference, self.scoring.labels, self.workload.task
            )
        except CompressionError as exc:
            result.status = "rejected"
            result.reason = str(exc)
            return result
        base_quality = self.baseline.quality
        if quality.accuracy is not None and base_quality and base_quality.accuracy is not None:
            quality.accuracy_drop = base_quality.accuracy - quality.accuracy
        result.quality = quality
        lat = result.latency[self.first].median_s
        if self.plan.reference == "onnx":
            result.speedup_vs_fp32_onnx = self.baseline.latency[self.first].median_s / lat
        result.speedup_vs_eager = self.eager_first_s / lat
        passed, result.reason = _gate(self.gate, quality, self.size_ratio(result))
        result.status = "passed" if passed else "rejected"
        return result

    def size_ratio(self, result: CandidateResult) -> float | None:
        """``result``'s size on disk as a fraction of the reference's, when both are known."""
        base = None if self.baseline is None else self.baseline.size_bytes
        if not base or result.size_bytes is None:
            return None
        return result.size_bytes / base

    def build_stage(
        self, stage: TorchStage, knobs: dict[str, Any], context: ApplyContext
    ) -> _StageBuild:
        """The stage's model for ``knobs``, exported to ONNX; built once per setting."""
        sid = _knob_id(stage.name, knobs)
        if sid in self.stage_builds:
            return self.stage_builds[sid]
        build = _StageBuild()
        self.stage_builds[sid] = build
        self.say(f"{sid}: building the stage's model")
        started = time.perf_counter()
        stage_context = dataclasses.replace(context, work_dir=self.output / "work" / sid)
        try:
            model = stage.transform(context.torch_model, knobs, stage_context)
        except Exception as exc:  # a stage plugin's failure rejects its pipelines only
            build.error = f"the stage {sid} could not be built: {type(exc).__name__}: {exc}"
            return build
        build.model = model
        workload = dataclasses.replace(
            self.workload, name=f"{self.workload.name}+{sid}", make_model=lambda: model
        )
        build.workload = workload
        folder = self.output / "candidates" / f"{sid}+{STAGE_ALONE}"
        try:
            path, dynamic = self.export(workload, folder, f"the model of stage {sid}")
        except CompressionError as exc:
            build.error = str(exc)
            return build
        if dynamic != self.dynamic:
            build.error = (
                f"the model of stage {sid} exported with a "
                f"{'dynamic' if dynamic else 'static'} batch, unlike the baseline"
            )
            return build
        build.path = path
        build.build_s = time.perf_counter() - started
        return build

    def try_item(self, item: _Item, prepared: _Prepared) -> CandidateResult:
        """Try one scheduled candidate: a technique alone or a pipeline."""
        if item.stage is None:
            assert item.technique is not None
            return self.try_candidate(
                item.technique, item.knobs, prepared.base_path, prepared.context
            )
        cid = _item_id(item)
        stage_name = item.stage.name
        technique = item.technique
        result = CandidateResult(
            id=cid,
            technique=STAGE_ALONE if technique is None else technique.name,
            knobs=item.knobs,
            status="rejected",
            reason="",
            runtime="onnxruntime" if technique is None else technique.runtime,
            stage=stage_name,
            stage_knobs=item.stage_knobs,
        )
        build = self.build_stage(item.stage, item.stage_knobs, prepared.context)
        if build.path is None:
            result.reason = build.error
            return result
        if technique is None:
            result.build_s = build.build_s
            return self.evaluate(result, build.path)
        facts = ModelFacts(
            task=self.workload.task,
            has_data=self.scoring.calibration is not None,
            op_types=_op_types(build.path),
        )
        applies, why = technique.applies_to(facts)
        if not applies:
            result.status = "not applicable"
            result.reason = f"on the stage's model: {why}"
            return result
        # Techniques that convert from torch (Core ML, LiteRT) build from the workload:
        # theirs makes the stage's model.
        context = dataclasses.replace(
            prepared.context, torch_model=build.model, workload=build.workload
        )
        return self.try_candidate(
            technique,
            item.knobs,
            build.path,
            context,
            cid,
            stage=stage_name,
            stage_knobs=item.stage_knobs,
        )

    def write_winner(self, source: Path) -> Path:
        """Copy ``source`` (a file with the files beside it, or a folder) to ``winner/``."""
        folder = self.output / "winner"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, folder / source.name)
            return folder / source.name
        for item in source.parent.iterdir():
            if item.is_file() and not item.name.startswith("eval-"):
                shutil.copy2(item, folder / item.name)
        return folder / source.name


@dataclass
class _Prepared:
    """A search's fixed part: the baseline measured, and the techniques that apply."""

    run: _Run
    base_path: Path
    eager: dict[str, Any]
    context: ApplyContext
    applicable: list[Technique]
    not_applicable: list[CandidateResult]
    started: float
    stages: list[TorchStage] = field(default_factory=list)

    @property
    def calibration_available(self) -> int:
        calibration = self.run.scoring.calibration
        return 0 if calibration is None else int(calibration[0].shape[0])


def _why_not_on_target(technique: Technique, plan: TargetPlan) -> str | None:
    """Why ``technique`` is not tried on ``plan``'s target, or ``None`` when it is."""
    targets = tuple(getattr(technique, "targets", ("cpu",)))
    if plan.target not in targets:
        return f"made for --target {', '.join(targets)}, not {plan.target}"
    if technique.runtime not in plan.runtimes:
        why = (
            f"runs on {technique.runtime}, which --target {plan.target} does not measure "
            f"(it measures {', '.join(plan.runtimes)})"
        )
        return "; ".join([why, *plan.notes])
    if plan.measured:
        available, why = evaluator_available(technique.runtime)
        if not available:
            return why
    return None


def _prepare(
    spec: str,
    output: Path,
    gate: QualityGate | None,
    options: SearchOptions,
    say: Callable[[str], None],
) -> _Prepared:
    """Load the workload, split its data, measure eager torch and the reference."""
    started = time.perf_counter()
    from as_optimize.compress._workloads import load

    plan = options.plan()
    workload, torch_model = load(spec)
    scoring = _split_data(workload, options)
    gate = (gate or QualityGate()).for_task(workload.task, scoring.labels is not None)
    options.threads = options.threads or available_cpus()
    bench = {int(b): as_float32(workload.inputs(int(b))) for b in options.batch_sizes}
    run = _Run(workload, output, gate, options, scoring, bench, say, plan=plan, spec=spec)
    run.say(
        f"{workload.name} on --target {plan.target}: scoring on {scoring.name}; "
        f"gate: {gate.describe()}; reference: {plan.reference_name}"
    )
    for note in plan.notes:
        run.say(note)

    eager_outputs, eager = _run_eager(torch_model, scoring, bench, options, plan.device)
    base_path, build_s = run.export_baseline()
    if plan.reference == "onnx":
        run.evaluate_baseline(base_path, build_s, eager_outputs, eager)
    else:
        run.eager_baseline(torch_model, eager_outputs[: scoring.inputs[0].shape[0]], eager)

    facts = ModelFacts(
        task=workload.task,
        has_data=scoring.calibration is not None,
        op_types=_op_types(base_path),
    )
    context = ApplyContext(
        input_names=list(workload.input_names),
        calibration=scoring.calibration,
        workload=workload,
        workload_spec=spec,
        torch_model=torch_model,
        example_inputs=as_float32(workload.inputs(1)),
        training=scoring.training,
        seed=options.seed,
        work_dir=output / "work",
        target=plan.target,
        device=plan.device,
    )
    not_applicable: list[CandidateResult] = []
    applicable = []

    def not_tried(name: str, why: str, *, runtime: str = "", stage: str | None = None) -> None:
        not_applicable.append(
            CandidateResult(
                id=name,
                technique=name,
                knobs={},
                status="not applicable",
                reason=why,
                runtime=runtime,
                stage=stage,
            )
        )
        run.say(f"{name}: not applicable: {why}")

    for technique in options.techniques:
        off_target = _why_not_on_target(technique, plan)
        if off_target is not None:
            not_tried(technique.name, off_target, runtime=technique.runtime)
            continue
        applies, why = technique.applies_to(facts)
        if applies:
            applicable.append(technique)
            continue
        not_tried(technique.name, why, runtime=technique.runtime)
    stages = []
    for stage in options.stages:
        try:
            applies, why = stage.applies_to(context)
        except Exception as exc:  # a stage plugin's failure leaves that stage out
            applies, why = False, f"its applies_to failed: {type(exc).__name__}: {exc}"
        if applies:
            stages.append(stage)
        else:
            not_tried(stage.name, why, stage=stage.name)
    return _Prepared(run, base_path, eager, context, applicable, not_applicable, started, stages)


def _report(
    prepared: _Prepared,
    results: list[CandidateResult],
    winner_file: Callable[[CandidateResult], Path] | None = None,
    study: dict[str, Any] | None = None,
) -> SearchReport:
    """Gate, Pareto front and winner over ``results``; the winner and report.json written.

    ``winner_file`` gives the model file of a winning candidate (by default the one its
    ``path`` names in the output folder). A winner without a file (eager torch, the
    reference of targets other than ``cpu``) writes no ``winner/``; ``winner_path`` is
    then empty.
    """
    run = prepared.run
    baseline = run.baseline
    assert baseline is not None
    output = run.output
    contenders = [baseline] + [r for r in results if r.status == "passed"]
    front = _pareto(contenders, run.first)
    for model in contenders:
        model.pareto = model.id in front
    winner, why = _pick_winner(
        contenders, baseline, run.first, run.plan.reference_name, run.options.objective
    )
    unmeasured = [r for r in results if r.status == "not measured"]
    if winner is baseline and unmeasured:
        reasons = sorted({r.reason for r in unmeasured})
        why += f"; {len(unmeasured)} candidate(s) were not measured ({'; '.join(reasons)})"
    if winner is baseline and baseline.path is None:
        winner_rel = ""
        why += "; it has no file of its own, so nothing is written to winner/"
    else:
        source = output / str(winner.path) if winner_file is None else winner_file(winner)
        winner_rel = str(run.write_winner(source).relative_to(output))
    scoring = run.scoring
    plan = run.plan
    report = SearchReport(
        workload=run.workload.name,
        task=run.workload.task,
        target=run.options.target,
        device=plan.device,
        runtimes=list(plan.runtimes),
        reference=plan.reference_name,
        target_notes=[
            *plan.notes,
            *(
                [f"candidates are not measured: {plan.why_not_measured}"]
                if not plan.measured
                else []
            ),
        ],
        gate=run.gate.describe(),
        scoring_data=scoring.name,
        scoring_examples=int(scoring.inputs[0].shape[0]),
        calibration_examples=prepared.calibration_available,
        batch_sizes=list(run.bench),
        threads=int(run.options.threads or 1),
        versions=_versions(),
        eager=prepared.eager,
        baseline=baseline,
        candidates=results,
        pareto=front,
        winner=winner.id,
        winner_reason=why,
        winner_path=winner_rel,
        elapsed_s=time.perf_counter() - prepared.started,
        study=study,
    )
    write_text_atomic(output / "report.json", report.model_dump_json(indent=2) + "\n")
    run.say(f"winner: {winner.id}: {why}")
    return report


def run_search(
    spec: str,
    output: Path,
    gate: QualityGate | None = None,
    options: SearchOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchReport:
    """Search for the fastest model of workload ``spec`` that passes ``gate``.

    Every knob setting of every technique that applies on the target is tried, and the
    pipelines of the stages that apply, in the order of :func:`_schedule`, up to
    ``options.trials`` candidates (:func:`run_study` searches the knobs with Optuna
    instead).

    Args:
        spec: The workload, a built-in name or ``pkg.module:factory``.
        output: The folder to write ``report.json``, ``winner/`` and ``candidates/`` in; it
            must not hold a report already.
        gate: The quality gate; the task's default (1 point of accuracy, or a cosine of
            0.99) when ``None`` or empty.
        options: How to search and measure, and on which target.
        progress: Called with a line of text as each step ends.
        clock: Seconds, for ``options.time_budget_s`` (monotonic; a test injects one).

    Raises:
        CompressionInputError: A bad workload, option, target or output folder.
        CompressionError: The fp32 baseline could not be exported or evaluated.
    """
    options = options or SearchOptions()
    options.check()
    output = Path(output)
    _check_output(output)
    prepared = _prepare(spec, output, gate, options, progress or (lambda line: None))
    run = prepared.run
    results = list(prepared.not_applicable)
    schedule = _schedule(
        prepared.applicable,
        options.trials,
        prepared.calibration_available,
        prepared.stages,
        stage_alone="onnxruntime" in run.plan.runtimes,
    )
    budget = options.time_budget_s
    started = clock()
    for index, item in enumerate(schedule):
        if budget is not None and clock() - started >= budget:
            left = schedule[index:]
            tried = sum(1 for r in results if r.status not in ("not tried", "not applicable"))
            reason = (
                f"not tried: the time budget of {budget:g} s was spent after {tried} "
                "candidates (--time-budget)"
            )
            results.extend(_not_tried(entry, reason) for entry in left)
            run.say(f"time budget of {budget:g} s spent: {len(left)} candidates not tried")
            break
        skip = _unpaid(item, results)
        if skip is not None:
            results.append(_not_tried(item, skip))
            run.say(f"{results[-1].id}: not tried: {skip}")
            continue
        result = run.try_item(item, prepared)
        if item.note:
            result.notes.append(item.note)
            run.say(f"{result.id}: {item.note}")
        results.append(result)
        run.say(describe_result(result, run.first))
    return _report(prepared, results)


#: A technique whose setting alone ran at under this share of the reference's speed is
#: not tried after a stage.
UNPAID_SPEEDUP = 0.5


def _unpaid(item: _Item, results: Sequence[CandidateResult]) -> str | None:
    """Why a pipeline is not worth trying, from its technique's result alone; else None.

    A stage is followed only by techniques that paid on their own: one whose setting,
    alone, failed the gate or ran at under :data:`UNPAID_SPEEDUP` of the reference's
    speed (clearly slower, beyond a busy machine's noise) would do no better after a
    stage (torchao's CPU kernels ran at 0.05-0.2x fp32 ONNX on the digits CNN). A
    technique not measured alone (Core ML off macOS) is still tried.
    """
    technique = item.technique
    if item.stage is None or technique is None:
        return None
    alone = next(
        (
            r
            for r in results
            if r.stage is None and r.technique == technique.name and r.knobs == item.knobs
        ),
        None,
    )
    if alone is None:
        return None
    if alone.status == "rejected":
        return f"{alone.id} alone was rejected, so pipelines do not add it"
    speedup = alone.speedup_vs_fp32_onnx
    if alone.status == "passed" and speedup is None:
        speedup = alone.speedup_vs_eager
    if alone.status == "passed" and speedup is not None and speedup < UNPAID_SPEEDUP:
        return f"{alone.id} alone ran at {speedup:.2f}x the reference, so pipelines do not add it"
    return None


def _not_tried(item: _Item, reason: str) -> CandidateResult:
    technique = item.technique
    return CandidateResult(
        id=_item_id(item),
        technique=STAGE_ALONE if technique is None else technique.name,
        knobs=item.knobs,
        status="not tried",
        reason=reason,
        runtime="onnxruntime" if technique is None else technique.runtime,
        stage=None if item.stage is None else item.stage.name,
        stage_knobs=item.stage_knobs,
    )


def describe_result(result: CandidateResult, batch: str) -> str:
    """One progress line for a candidate: its status, latency at ``batch`` and reason."""
    lat = result.latency.get(batch)
    shown = "" if lat is None else f"{lat.median_s * 1e6:.1f} us, "
    return f"{result.id}: {result.status}: {shown}{result.reason}"
