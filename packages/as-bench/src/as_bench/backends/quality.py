"""Is a backend's answer right? Output checks against a reference, and workload metrics.

A backend that is fast because it is wrong must not win a benchmark. The runner checks
the *agreement* of each backend's outputs on the workload's inputs with the reference
backend's outputs (:func:`check_outputs`) and scores each backend on the workload's
held-out data (:func:`evaluate`). Both work on NumPy arrays only; nothing heavy is
imported. ("Compare" in as-bench means the regression comparison of two sets of results,
:mod:`as_bench.compare`; :data:`compare_outputs` is kept as another name of
:func:`check_outputs`, which as-deploy's parity check calls.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from as_bench.backends._base import PreparedModel
from as_bench.exceptions import WorkloadError
from as_bench.workloads._base import Task, Workload

__all__ = ["OutputCheckResult", "check_outputs", "compare_outputs", "evaluate"]

Array = npt.NDArray[Any]

_DEFAULT_METRIC: dict[str, str] = {
    "classification": "accuracy",
    "embedding": "cosine_similarity",
    "regression": "mse",
}


class OutputCheckResult(BaseModel):
    """How a candidate backend's outputs compare with the reference backend's.

    Attributes:
        passed: Every check held: same number and shapes of outputs, all finite where the
            reference is, every element within ``atol + rtol * |reference|``, and the
            optional top-1 / cosine thresholds met.
        task: The workload's task; decides which summary figures are computed.
        atol: Absolute tolerance used.
        rtol: Relative tolerance used.
        max_abs_error: Largest ``|candidate - reference|`` over every output element.
        max_rel_error: Largest ``|candidate - reference| / |reference|`` over the elements
            where ``|reference| > atol`` (near zero the absolute error is what counts).
        top1_agreement: Classification: fraction of rows of the first output whose arg-max
            class is the same.
        cosine_similarity: Embedding: mean cosine similarity of the rows of the first
            output; ``min_cosine_similarity`` is the worst row.
        failures: What failed, in words; empty when ``passed``.
    """

    model_config = ConfigDict(frozen=True)

    passed: bool
    task: Task
    atol: float
    rtol: float
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float | None = None
    cosine_similarity: float | None = None
    min_cosine_similarity: float | None = None
    failures: list[str] = []


def _row_cosines(a: Array, b: Array) -> Array:
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    dots = np.sum(a2 * b2, axis=1)
    result: Array = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return result


def _element_errors(
    index: int, ref: Array, cand: Array, atol: float, rtol: float, failures: list[str]
) -> tuple[float, float]:
    """Max abs and rel error of one output pair; appends what failed to ``failures``."""
    r = ref.astype(np.float64)
    c = cand.astype(np.float64)
    bad = np.isfinite(r) & ~np.isfinite(c)
    if bad.any():
        failures.append(f"output {index}: {int(bad.sum())} non-finite values (NaN or inf)")
    diff = np.abs(c - r)
    both_finite = np.isfinite(r) & np.isfinite(c)
    finite_diff = np.where(both_finite, diff, 0.0)
    max_abs = float("inf") if bad.any() else float(finite_diff.max(initial=0.0))
    significant = both_finite & (np.abs(r) > atol)
    rel = np.where(significant, finite_diff / np.where(significant, np.abs(r), 1.0), 0.0)
    max_rel = float(rel.max(initial=0.0))
    outside = both_finite & (diff > atol + rtol * np.abs(r))
    if outside.any():
        worst = np.unravel_index(int(np.argmax(np.where(outside, diff, -1.0))), r.shape)
        failures.append(
            f"output {index}: {int(outside.sum())} of {r.size} values differ by more than "
            f"atol + rtol*|ref| (atol={atol:g}, rtol={rtol:g}); worst at "
            f"{tuple(int(i) for i in worst)}: {c[worst]:.6g} vs {r[worst]:.6g}"
        )
    return max_abs, max_rel


def check_outputs(
    reference: Sequence[Array],
    candidate: Sequence[Array],
    *,
    task: Task,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    min_top1_agreement: float | None = None,
    min_cosine_similarity: float | None = None,
) -> OutputCheckResult:
    """Check that a candidate backend's outputs agree with the reference's, on the same inputs.

    Args:
        reference: Outputs of the reference backend (eager PyTorch on the CPU, usually).
        candidate: Outputs of the backend under test, same order.
        task: The workload's task: classification adds top-1 agreement, embedding adds
            cosine similarity.
        atol: Absolute tolerance per element.
        rtol: Relative tolerance per element.
        min_top1_agreement: If given, ``passed`` also needs at least this top-1 agreement
            (for reduced precision, where logits move but the class should not).
        min_cosine_similarity: If given, ``passed`` also needs every row at least this
            similar (embeddings).

    Returns:
        The figures and whether the candidate passed; never raises on a mismatch, so the
        caller can record the figures of a failing backend.
    """
    failures: list[str] = []
    if len(reference) != len(candidate):
        failures.append(f"{len(candidate)} outputs, the reference has {len(reference)}")
    max_abs = max_rel = 0.0
    pairs = list(zip(reference, candidate, strict=False))
    comparable = []
    for index, (ref, cand) in enumerate(pairs):
        ref, cand = np.asarray(ref), np.asarray(cand)
        if ref.shape != cand.shape:
            failures.append(f"output {index}: shape {cand.shape}, the reference has {ref.shape}")
            continue
        comparable.append(index)
        out_abs, out_rel = _element_errors(index, ref, cand, atol, rtol, failures)
        max_abs, max_rel = max(max_abs, out_abs), max(max_rel, out_rel)
    if not pairs or 0 not in comparable:
        # Nothing to summarise: with no comparable first output, no error is measured.
        return OutputCheckResult(
            passed=False,
            task=task,
            atol=atol,
            rtol=rtol,
            max_abs_error=float("inf"),
            max_rel_error=float("inf"),
            failures=failures or ["no outputs to compare"],
        )
    first_ref, first_cand = np.asarray(reference[0]), np.asarray(candidate[0])
    top1 = cosine = min_cosine = None
    if task == "classification" and first_ref.ndim >= 2:
        top1 = float(np.mean(first_ref.argmax(axis=-1) == first_cand.argmax(axis=-1)))
        if min_top1_agreement is not None and top1 < min_top1_agreement:
            failures.append(f"top-1 agreement {top1:.4f} < required {min_top1_agreement:.4f}")
    if task == "embedding" and first_ref.ndim >= 1 and len(first_ref) > 0:
        cosines = _row_cosines(first_ref, first_cand)
        cosine, min_cosine = float(cosines.mean()), float(cosines.min())
        if min_cosine_similarity is not None and min_cosine < min_cosine_similarity:
            failures.append(
                f"cosine similarity of a row {min_cosine:.6f} < required "
                f"{min_cosine_similarity:.6f}"
            )
    return OutputCheckResult(
        passed=not failures,
        task=task,
        atol=atol,
        rtol=rtol,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        top1_agreement=top1,
        cosine_similarity=cosine,
        min_cosine_similarity=min_cosine,
        failures=failures,
    )


#: Another name of :func:`check_outputs` (its former name), kept for callers such as
#: as-deploy's parity check.
compare_outputs = check_outputs


def _padded(array: Array, size: int) -> Array:
    """``array`` grown to ``size`` rows by repeating its last row."""
    missing = size - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])


def predict_dataset(prepared: PreparedModel, inputs: Sequence[Array]) -> Array:
    """First output of ``prepared`` over every row of ``inputs``, in batches of its size.

    The last partial batch is padded with copies of its last row and the padding's outputs
    dropped: exported models (LiteRT, Core ML, static ONNX) accept one batch size only.
    """
    batch = prepared.batch_size
    total = len(inputs[0])
    outputs: list[Array] = []
    for start in range(0, total, batch):
        rows = min(batch, total - start)
        chunk = tuple(_padded(np.asarray(a[start : start + batch]), batch) for a in inputs)
        outputs.append(np.asarray(prepared.predict(chunk)[0])[:rows])
    return np.concatenate(outputs)


def evaluate(prepared: PreparedModel, workload: Workload) -> dict[str, float]:
    """Score ``prepared`` on the workload's held-out dataset with the workload's metric.

    Returns:
        Classification: ``{"accuracy": ...}`` (top-1 on the first output). Embedding:
        ``{"cosine_similarity": mean, "cosine_similarity_min": worst row}`` against the
        reference embeddings. Regression: ``{"mse": ..., "max_abs_error": ...}``. The main
        key is the workload's ``metric_name`` when it sets one.

    Raises:
        WorkloadError: The workload has no dataset.
    """
    dataset = workload.dataset
    if dataset is None:
        raise WorkloadError(f"workload {workload.name!r} has no dataset to evaluate on")
    predicted = predict_dataset(prepared, dataset.inputs)
    targets = np.asarray(dataset.targets)
    key = workload.metric_name or _DEFAULT_METRIC[workload.task]
    if workload.task == "classification":
        return {key: float(np.mean(predicted.argmax(axis=-1) == targets))}
    if workload.task == "embedding":
        cosines = _row_cosines(predicted, targets)
        return {key: float(cosines.mean()), f"{key}_min": float(cosines.min())}
    error = predicted.astype(np.float64) - targets.astype(np.float64)
    return {key: float(np.mean(error**2)), "max_abs_error": float(np.abs(error).max())}
