"""The parity check: the exported file, run in its runtime, against eager PyTorch.

Outputs are compared with :func:`as_bench.backends.compare_outputs`: every element
within ``atol + rtol * |reference|``, plus, for classifiers, a floor on the fraction of
inputs whose arg-max class agrees (and for embeddings, on each row's cosine similarity).

Default tolerances, by format and precision:

========  =========  ======  ======  ===================  ==================
format    precision  atol    rtol    top-1 floor          cosine floor
========  =========  ======  ======  ===================  ==================
onnx      fp32       1e-4    1e-3    0.99                 0.9999
tflite    fp32       1e-4    1e-3    0.99                 0.9999
coreml    fp32       1e-3    1e-2    0.99                 0.9999
coreml    fp16       5e-2    5e-2    0.98                 0.999
========  =========  ======  ======  ===================  ==================

fp32 runtimes sum in other orders than PyTorch, hence a tolerance at all; Core ML may run
an fp32 program on the GPU; an fp16 program moves logits by about one part in a
thousand per layer, so only a loose element check and the class agreement mean anything.
The top-1 floor sits below 1 so that a near-tie between two classes (logits equal to
within the tolerance) does not fail an export. ``atol``/``rtol`` given by the caller
replace the defaults; the floors stay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from as_deploy.exceptions import ExportError, ParityError, UsageError
from as_deploy.manifest import ParityReport

if TYPE_CHECKING:
    from as_bench.workloads import Task

__all__ = [
    "REFERENCE",
    "Tolerances",
    "check_parity",
    "default_tolerances",
    "not_run_report",
    "reference_outputs",
    "run_batched",
]

Array = npt.NDArray[Any]

#: What exported models are compared with.
REFERENCE = "torch"

_REFERENCE_CHUNK = 64


@dataclass(frozen=True)
class Tolerances:
    """What a parity check allows.

    Attributes:
        atol: Absolute tolerance per element.
        rtol: Relative tolerance per element.
        min_top1_agreement: Classification: the least fraction of agreeing arg-max classes.
        min_cosine_similarity: Embeddings: the least cosine similarity of any row.
    """

    atol: float
    rtol: float
    min_top1_agreement: float | None = None
    min_cosine_similarity: float | None = None


_DEFAULTS: dict[tuple[str, str], tuple[float, float, float, float]] = {
    # (format, precision): atol, rtol, top-1 floor, cosine floor
    ("onnx", "fp32"): (1e-4, 1e-3, 0.99, 0.9999),
    ("tflite", "fp32"): (1e-4, 1e-3, 0.99, 0.9999),
    ("coreml", "fp32"): (1e-3, 1e-2, 0.99, 0.9999),
    ("coreml", "fp16"): (5e-2, 5e-2, 0.98, 0.999),
}


def default_tolerances(
    fmt: str,
    precision: str,
    task: str,
    *,
    atol: float | None = None,
    rtol: float | None = None,
) -> Tolerances:
    """The tolerances for ``fmt`` at ``precision`` (see the module docstring).

    Args:
        fmt: ``"onnx"``, ``"coreml"`` or ``"tflite"``.
        precision: ``"fp32"`` or ``"fp16"``.
        task: The workload's task (``"classification"``, ``"embedding"``, ``"regression"``).
        atol: Replaces the default absolute tolerance.
        rtol: Replaces the default relative tolerance.

    Raises:
        UsageError: A tolerance is negative or not finite, or the format has no such
            precision.
    """
    if (fmt, precision) not in _DEFAULTS:
        raise UsageError(f"{fmt} export has no {precision} option")
    default_atol, default_rtol, top1, cosine = _DEFAULTS[(fmt, precision)]
    for what, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{what} must be a finite number >= 0, not {value!r}")
    return Tolerances(
        atol=default_atol if atol is None else float(atol),
        rtol=default_rtol if rtol is None else float(rtol),
        min_top1_agreement=top1 if task == "classification" else None,
        min_cosine_similarity=cosine if task == "embedding" else None,
    )


def _as_arrays(outputs: Any) -> list[Array]:
    items = outputs if isinstance(outputs, tuple | list) else (outputs,)
    arrays = []
    for item in items:
        if hasattr(item, "detach"):
            item = item.detach().cpu().numpy()
        arrays.append(np.asarray(item))
    return arrays


def reference_outputs(model: Any, inputs: Sequence[Array]) -> list[Array]:
    """Eager PyTorch outputs of ``model`` (a ``torch.nn.Module`` in eval mode) on ``inputs``.

    Runs in chunks of 64 rows on the CPU, in fp32, under ``torch.inference_mode``.
    """
    import torch

    total = int(inputs[0].shape[0])
    chunks: list[list[Array]] = []
    with torch.inference_mode():
        for start in range(0, total, _REFERENCE_CHUNK):
            args = tuple(
                torch.from_numpy(np.ascontiguousarray(a[start : start + _REFERENCE_CHUNK]))
                for a in inputs
            )
            chunks.append(_as_arrays(model(*args)))
    return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]


def _padded(array: Array, size: int) -> Array:
    missing = size - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])


def run_batched(
    run: Callable[[tuple[Array, ...]], list[Array]],
    inputs: Sequence[Array],
    batch_size: int | None,
    *,
    chunk: int = 64,
) -> list[Array]:
    """Every output of ``run`` over every row of ``inputs``.

    Args:
        run: Runs one batch, returns the outputs in order.
        inputs: One array per model input, first axis = examples.
        batch_size: The model's fixed batch size (the last chunk is padded with copies of
            its last row and the padding's outputs dropped); ``None`` for a dynamic batch,
            which runs the first row alone (proving batch 1 works) and the rest in chunks
            of ``chunk`` rows.
        chunk: Rows per call with a dynamic batch.

    Raises:
        ExportError: ``run`` failed or returned outputs of the wrong batch size.
    """
    total = int(inputs[0].shape[0])
    if batch_size is None:
        bounds = [(0, 1)] + [(s, min(s + chunk, total)) for s in range(1, total, chunk)]
    else:
        bounds = [(s, min(s + batch_size, total)) for s in range(0, total, batch_size)]
    pieces: list[list[Array]] = []
    for start, stop in bounds:
        rows = stop - start
        batch = tuple(np.asarray(a[start:stop]) for a in inputs)
        if batch_size is not None:
            batch = tuple(_padded(a, batch_size) for a in batch)
        try:
            outputs = [np.asarray(o) for o in run(batch)]
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(
                f"running the exported model on rows {start}..{stop - 1} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        expected = batch_size if batch_size is not None else rows
        for index, output in enumerate(outputs):
            if output.ndim == 0 or output.shape[0] != expected:
                raise ExportError(
                    f"the exported model returned output {index} of shape {output.shape} "
                    f"for a batch of {expected}"
                )
        pieces.append([o[:rows] for o in outputs])
    return [np.concatenate([p[i] for p in pieces]) for i in range(len(pieces[0]))]


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def check_parity(
    reference: Sequence[Array],
    candidate: Sequence[Array],
    *,
    fmt: str,
    task: Task,
    tolerances: Tolerances,
    runtime: str,
    data: str | None = None,
) -> ParityReport:
    """Compare ``candidate`` outputs with ``reference``; a report, or :class:`ParityError`.

    Args:
        reference: Eager PyTorch outputs.
        candidate: The exported model's outputs on the same inputs.
        fmt: The export format, for the error.
        task: The workload's task.
        tolerances: What is allowed.
        runtime: The runtime that produced ``candidate``.
        data: What the inputs were, in words.

    Returns:
        The passed report.

    Raises:
        ParityError: A difference is beyond the tolerances, a floor is not met, an output
            is missing or of another shape, or the candidate produced NaN or inf.
    """
    from as_bench.backends import compare_outputs

    result = compare_outputs(
        reference,
        candidate,
        task=task,
        atol=tolerances.atol,
        rtol=tolerances.rtol,
        min_top1_agreement=tolerances.min_top1_agreement,
        min_cosine_similarity=tolerances.min_cosine_similarity,
    )
    inputs_checked = int(np.asarray(reference[0]).shape[0]) if len(reference) else 0
    report = None
    if inputs_checked >= 1 and _finite(result.max_abs_error) and _finite(result.max_rel_error):
        report = ParityReport(
            runtime=runtime,
            reference=REFERENCE,
            inputs_checked=inputs_checked,
            max_abs_error=result.max_abs_error,
            max_rel_error=result.max_rel_error,
            top1_agreement=result.top1_agreement,
            atol=tolerances.atol,
            rtol=tolerances.rtol,
            passed=result.passed,
            min_top1_agreement=tolerances.min_top1_agreement,
            data=data,
        )
    if result.passed and report is not None:
        return report
    raise ParityError(
        format=fmt,
        failures=list(result.failures) or ["no inputs were compared"],
        max_abs_error=result.max_abs_error,
        max_rel_error=result.max_rel_error,
        top1_agreement=result.top1_agreement,
        atol=tolerances.atol,
        rtol=tolerances.rtol,
        inputs_checked=inputs_checked,
        report=report,
    )


def not_run_report(
    runtime: str, reason: str, tolerances: Tolerances, data: str | None = None
) -> ParityReport:
    """The report of a check that could not run here, with the tolerances it will use."""
    return ParityReport(
        runtime=runtime,
        reference=REFERENCE,
        atol=tolerances.atol,
        rtol=tolerances.rtol,
        status="not_run",
        reason=reason,
        min_top1_agreement=tolerances.min_top1_agreement,
        data=data,
    )
