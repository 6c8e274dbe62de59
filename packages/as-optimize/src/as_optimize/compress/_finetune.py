"""Fine-tuning a smaller or pruned model from its teacher (knowledge distillation).

:func:`train_from_teacher` trains a student on :class:`~as_optimize.compress.TrainingData`
to reproduce a teacher's outputs. Two losses, chosen by the task:

- classification: ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))`` plus
  ``(1 - alpha) * cross_entropy(student, labels)`` when the data has labels (Hinton et
  al.'s distillation loss; the ``T^2`` keeps the soft term's gradients at the scale of the
  hard one's as ``T`` grows). Without labels the soft term alone.
- embedding and regression: ``MSE(student, teacher) + (1 - cosine(student, teacher))``,
  both averaged over the batch: the magnitude and the direction of each output.

The teacher's outputs are computed once, in eval mode, before training. The loop runs
through :class:`as_optimize.training.Monitor` in ``run_dir`` (``metrics.jsonl``,
``events.jsonl``): a non-finite loss or gradient, or a diverging loss, stops the run and
raises :class:`~as_optimize.exceptions.CompressionError` naming the step. On the CPU two
runs with the same seed give the same weights bit for bit (the data order comes from a
generator seeded with ``seed + epoch``, initial randomness such as dropout from ``seed``,
without touching the caller's global random state).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from as_core.extras import require
from as_optimize.compress._data import TrainingData
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["first_tensor", "train_from_teacher"]

_TASKS = ("classification", "embedding", "regression")


def first_tensor(output: Any) -> Any:
    """The tensor a model's output stands for: itself, the first of a tuple, or a field.

    Hugging Face style outputs are read by ``last_hidden_state`` then ``logits``.

    Raises:
        CompressionError: Nothing in ``output`` is a tensor.
    """
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return first_tensor(output[0])
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, dict) and output:
        return first_tensor(next(iter(output.values())))
    raise CompressionError(f"the model returned {type(output).__name__}, not a tensor")


def _check(epochs: int, lr: float, batch_size: int, temperature: float, alpha: float) -> None:
    if epochs < 1:
        raise CompressionInputError(f"fine-tuning: epochs must be at least 1, not {epochs}")
    if not lr > 0:
        raise CompressionInputError(
            f"fine-tuning: lr (the learning rate) must be positive, not {lr}"
        )
    if batch_size < 1:
        raise CompressionInputError(
            f"fine-tuning: the batch size must be at least 1, not {batch_size}"
        )
    if not temperature > 0:
        raise CompressionInputError(
            f"fine-tuning: the temperature must be positive, not {temperature}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise CompressionInputError(f"fine-tuning: alpha must be between 0 and 1, not {alpha}")


def _tensors(arrays: tuple[Any, ...], device: Any) -> tuple[Any, ...]:
    import torch

    out = []
    for array in arrays:
        a = np.asarray(array)
        if a.dtype.kind == "f":
            a = a.astype(np.float32, copy=False)
        out.append(torch.from_numpy(np.array(a, order="C", copy=True)).to(device))
    return tuple(out)


def _teacher_outputs(teacher: Any, inputs: tuple[Any, ...], chunk: int) -> Any:
    import torch

    was_training = teacher.training
    teacher.eval()
    try:
        rows = int(inputs[0].shape[0])
        pieces = []
        with torch.no_grad():
            for start in range(0, rows, chunk):
                part = tuple(t[start : start + chunk] for t in inputs)
                pieces.append(first_tensor(teacher(*part)).detach().float())
        return torch.cat(pieces, dim=0)
    finally:
        teacher.train(was_training)


def _loss_fn(
    task: str, temperature: float, alpha: float, has_labels: bool
) -> Callable[[Any, Any, Any], Any]:
    import torch.nn.functional as F

    if task == "classification":
        soft_weight = alpha if has_labels else 1.0

        def classification(student_out: Any, teacher_out: Any, labels: Any) -> Any:
            log_student = F.log_softmax(student_out / temperature, dim=-1)
            log_teacher = F.log_softmax(teacher_out / temperature, dim=-1)
            soft = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
            loss = soft_weight * temperature**2 * soft
            if has_labels and soft_weight < 1.0:
                loss = loss + (1.0 - soft_weight) * F.cross_entropy(student_out, labels)
            return loss

        return classification

    def embedding(student_out: Any, teacher_out: Any, labels: Any) -> Any:
        s = student_out.reshape(student_out.shape[0], -1)
        t = teacher_out.reshape(teacher_out.shape[0], -1)
        cosine = F.cosine_similarity(s, t, dim=1, eps=1e-8)
        return F.mse_loss(s, t) + (1.0 - cosine).mean()

    return embedding


def _monitor_settings() -> Any:
    from as_optimize.training import MonitorSettings

    # A fine-tuning run is short and never resumed: no checkpoints, no progress output
    # (the search reports its own), and a failure stops it at once instead of rolling back.
    return MonitorSettings.model_validate(
        {
            "nonfinite": {"policy": "stop"},
            "divergence": {"policy": "stop"},
            "stall": {"enabled": False},
            "slowdown": {"enabled": False},
            "checkpoint": {"every_steps": 0, "at_start": False, "resume": False},
            "progress": {"mode": "off"},
        }
    )


def train_from_teacher(
    student: nn.Module,
    teacher: nn.Module,
    data: TrainingData,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    temperature: float,
    alpha: float,
    seed: int,
    run_dir: Path | str,
    after_step: Callable[[nn.Module], None] | None = None,
    task: str | None = None,
) -> nn.Module:
    """Train ``student`` to reproduce ``teacher`` on ``data``; see the module's docstring.

    The student is trained in place (Adam, ``lr``) on the device of its parameters and
    returned in eval mode; the teacher is not changed.

    Args:
        student: The model to train (same inputs as the teacher, same output shape).
        teacher: The reference model.
        data: The examples (never the ones candidates are scored on).
        epochs: Passes over ``data``.
        lr: Adam's learning rate.
        batch_size: Examples per optimizer step (the last batch of an epoch may be smaller).
        temperature: ``T`` of the soft targets (classification).
        alpha: Weight of the soft (teacher) term against the labels' cross-entropy.
        seed: Seeds the data order and any randomness in the student's forward pass.
        run_dir: The monitor's folder (metrics and events of the run).
        after_step: Called with the student after each optimizer step (a pruning mask
            re-applied, for instance).
        task: ``classification``, ``embedding`` or ``regression``; by default
            classification when ``data`` has labels, otherwise the output-matching loss.

    Returns:
        ``student``, trained, in eval mode.

    Raises:
        CompressionInputError: A setting is out of range, or the task is unknown.
        CompressionError: The loss or the gradients became NaN or infinite, or the loss
            diverged (the message names the step), or the models failed to run.
        MissingExtraError: torch is not installed.
    """
    torch = require("torch", "training", error=MissingExtraError)
    from as_optimize.training import Monitor

    _check(epochs, lr, batch_size, temperature, alpha)
    chosen = task or ("classification" if data.labels is not None else "embedding")
    if chosen not in _TASKS:
        raise CompressionInputError(f"fine-tuning: task {chosen!r} is not one of {_TASKS}")
    has_labels = chosen == "classification" and data.labels is not None

    params = list(student.parameters())
    device = params[0].device if params else torch.device("cpu")
    inputs = _tensors(data.inputs, device)
    labels = (
        torch.from_numpy(np.asarray(data.labels).astype(np.int64)).to(device)
        if has_labels
        else None
    )
    try:
        targets = _teacher_outputs(teacher, inputs, max(batch_size, 256))
    except CompressionError:
        raise
    except Exception as exc:
        raise CompressionError(
            f"fine-tuning: the teacher failed on the training data: {exc}"
        ) from exc
    loss_fn = _loss_fn(chosen, temperature, alpha, has_labels)
    rows = len(data)
    optimizer = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr)
    devices = [device.index or 0] if device.type == "cuda" else []

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        student.train()
        with Monitor(
            Path(run_dir), model=student, optimizer=optimizer, settings=_monitor_settings()
        ) as monitor:
            for epoch in monitor.epochs(epochs):
                order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed + epoch))
                total = 0.0
                for start in range(0, rows, batch_size):
                    index = order[start : start + batch_size].to(device)
                    optimizer.zero_grad(set_to_none=True)
                    try:
                        out = first_tensor(student(*(t[index] for t in inputs)))
                    except CompressionError:
                        raise
                    except Exception as exc:
                        raise CompressionError(
                            f"fine-tuning: the student failed at step {monitor.global_step + 1}: "
                            f"{exc}"
                        ) from exc
                    if out.shape[1:] != targets.shape[1:]:
                        raise CompressionError(
                            f"fine-tuning: the student's output {tuple(out.shape[1:])} per "
                            f"example differs from the teacher's {tuple(targets.shape[1:])}"
                        )
                    loss = loss_fn(
                        out.float(), targets[index], labels[index] if labels is not None else None
                    )
                    loss.backward()
                    optimizer.step()
                    if after_step is not None:
                        after_step(student)
                    decision = monitor.step(loss=loss, batch_size=int(index.shape[0]))
                    if decision.stop:
                        _raise_stopped(decision, monitor.global_step, run_dir)
                    total += float(loss.detach()) * int(index.shape[0])
                decision = monitor.evaluate({"distill_loss": total / rows})
                if decision.stop:
                    _raise_stopped(decision, monitor.global_step, run_dir)
    return student.eval()


def _raise_stopped(decision: Any, step: int, run_dir: Path | str) -> None:
    events = [e for e in decision.events if e.action == "stop"] or list(decision.events)
    if events:
        event = events[0]
        what = f"{event.kind} at step {event.step} (epoch {event.epoch}): {event.message}"
    else:
        what = f"stopped at step {step}"
    raise CompressionError(
        f"fine-tuning from the teacher failed: {what}; the run's metrics and events are in "
        f"{run_dir} (a lower learning rate, or examples without NaN, may help)"
    )
