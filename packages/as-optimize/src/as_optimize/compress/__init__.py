"""Model compression under a quality gate: profile a model, try techniques, keep the best.

- :func:`profile_workload` (``as-optimize profile``): parameters and bytes by dtype and
  layer type, MACs per layer, activation memory, the share of CPU time per layer type,
  compute- or memory-bound at batch 1 and a larger batch, which techniques apply where.
- :func:`run_search` (``as-optimize run``): an fp32 ONNX baseline and one candidate per
  technique and knob setting, each evaluated in a child process (a runtime crash rejects
  the candidate), measured with as-bench's engine, scored against the fp32 outputs and
  the workload's labels, gated, and the winner picked from the Pareto front of latency,
  size and quality.
- :func:`run_study` (``as-optimize run --search optuna``) and :func:`run_worker`
  (``as-optimize worker``): the techniques' knobs searched with Optuna's multi-objective
  samplers (latency, size, quality; the gate as a constraint) in a study that workers on
  many machines share (PostgreSQL), with heartbeats so a stopped worker's trial is retried.
- :func:`profile` and :func:`optimize`: the two commands as functions, with the same
  options; :func:`optimize` returns an :class:`OptimizeResult`.
- :func:`hand_off` (``as-optimize run --repo DIR``): the winner written into an as-deploy
  model repository as a new version, with its provenance (``as-optimize[deploy]``);
  with ``export`` (:data:`EXPORT_FORMATS`, :func:`check_exports`) the workload's plain
  fp32 Core ML and LiteRT exports beside it.
- :func:`write_report`: a search's ``report.md`` and self-contained ``report.html``
  (every choice explained with its figures, the latency-size figure), written by
  :func:`optimize` and ``as-optimize run``.
- :class:`Technique`: the plugin protocol; :class:`OrtDynamicInt8`, :class:`OrtStaticInt8`,
  :class:`OrtInt4WeightOnly`, :class:`OrtWeightStorage` and :class:`Fp16` are built in.
  :class:`TorchStage`: a torch-side stage (pruning, distillation) that pipelines run
  before a technique (:func:`default_stages`).
- Targets (:func:`plan_target`: ``cpu``, ``cuda``, ``mps``, ``coreml``, ``tflite``) and the
  runtimes whose child evaluators measure candidates (:data:`RUNTIMES`,
  :func:`register_runtime`).

Importing this module imports no torch or onnxruntime; the functions do, when called
(``uv add "as-optimize[compress]"``).
"""

from as_optimize.compress._api import OptimizeResult, optimize, profile
from as_optimize.compress._handoff import (
    EXPORT_FORMATS,
    Deployment,
    HandOff,
    check_exports,
    hand_off,
    optimization_record,
    parity_tolerances,
)
from as_optimize.compress._optuna import (
    REPEAT_ATTR,
    StudyOptions,
    create_study,
    redact_storage,
    run_study,
    run_worker,
    storage_url,
)
from as_optimize.compress._pipeline import TorchStage, default_stages
from as_optimize.compress._profile import ModelProfile, measure_machine_balance, profile_workload
from as_optimize.compress._report import write_report
from as_optimize.compress._runtimes import (
    RUNTIMES,
    TARGETS,
    TargetPlan,
    plan_target,
    register_runtime,
)
from as_optimize.compress._search import (
    CandidateResult,
    QualityGate,
    SearchOptions,
    SearchReport,
    run_search,
)
from as_optimize.compress._techniques import (
    LAYER_OPS,
    ApplyContext,
    Fp16,
    ModelFacts,
    OrtDynamicInt8,
    OrtInt4WeightOnly,
    OrtStaticInt8,
    Technique,
    available_techniques,
    default_techniques,
    layer_support,
)
from as_optimize.compress._weight_storage import OrtWeightStorage

__all__ = [
    "EXPORT_FORMATS",
    "LAYER_OPS",
    "REPEAT_ATTR",
    "RUNTIMES",
    "TARGETS",
    "ApplyContext",
    "CandidateResult",
    "Deployment",
    "Fp16",
    "HandOff",
    "ModelFacts",
    "ModelProfile",
    "OptimizeResult",
    "OrtDynamicInt8",
    "OrtInt4WeightOnly",
    "OrtStaticInt8",
    "OrtWeightStorage",
    "QualityGate",
    "SearchOptions",
    "SearchReport",
    "StudyOptions",
    "TargetPlan",
    "Technique",
    "TorchStage",
    "available_techniques",
    "check_exports",
    "create_study",
    "default_stages",
    "default_techniques",
    "hand_off",
    "layer_support",
    "measure_machine_balance",
    "optimization_record",
    "optimize",
    "parity_tolerances",
    "plan_target",
    "profile",
    "profile_workload",
    "redact_storage",
    "register_runtime",
    "run_search",
    "run_study",
    "run_worker",
    "storage_url",
    "write_report",
]
