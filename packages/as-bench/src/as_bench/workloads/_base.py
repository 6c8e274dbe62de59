"""The Workload contract: a model, inputs by batch size, and optionally data and a metric.

A workload is framework-neutral at this level: its model is whatever its factory returns
(today always a ``torch.nn.Module``), its inputs are NumPy arrays, so that every backend
(PyTorch, ONNX Runtime, LiteRT, Core ML, MLX) starts from the same bytes and outputs can
be compared across backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Dataset", "Task", "Workload"]

Task = Literal["classification", "embedding", "regression"]
Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Dataset:
    """Examples with targets: held-out data to score a backend's outputs on, or training data.

    A workload's :attr:`Workload.dataset` is held out (never trained on); its optional
    :attr:`Workload.train` holds the examples its model was trained on.

    Attributes:
        inputs: Model inputs, one array per model input, first axis = examples.
        targets: What the outputs should be: class labels for classification, reference
            embeddings for an embedding model.
        name: Where the data came from, for reports (``"sklearn digits, 20% held out"``).
    """

    inputs: tuple[Array, ...]
    targets: Array
    name: str

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class Workload:
    """A model to benchmark, with how to feed it.

    Attributes:
        name: Short unique name (``"mlp"``, ``"digits-cnn"``, ``"minilm"``).
        description: One line for people.
        task: What the outputs are; decides the metric and the output check.
        make_model: Builds the model (a ``torch.nn.Module`` in eval mode, on the CPU, fp32).
        make_inputs: Inputs for one batch of ``batch_size`` items, NumPy, deterministic
            for a given batch size (a fixed seed), one array per model input.
        input_names: Names of the model inputs, in order (used for ONNX and Core ML).
        output_names: Names of the model outputs, in order.
        dataset: Optional held-out data; ``None`` when the workload has none.
        train: Optional training examples, disjoint from ``dataset`` (for a trained
            built-in, the split its weights were trained on); ``None`` when the workload
            has none. Techniques that fine-tune (pruning, distillation) train on these, so
            that no held-out example they are scored on is trained on.
        metric_name: Name of the quality metric (``"accuracy"``, ``"cosine_similarity"``).
        dynamic_batch: Whether exporters may mark the first axis dynamic.
        tags: Free-form facts (parameter count, source), copied into results.
    """

    name: str
    description: str
    task: Task
    make_model: Callable[[], Any]
    make_inputs: Callable[[int], tuple[Array, ...]]
    input_names: Sequence[str] = ("input",)
    output_names: Sequence[str] = ("output",)
    dataset: Dataset | None = None
    train: Dataset | None = None
    metric_name: str | None = None
    dynamic_batch: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    def inputs(self, batch_size: int) -> tuple[Array, ...]:
        """Inputs for one batch, checked: ``batch_size`` items along the first axis."""
        arrays = self.make_inputs(batch_size)
        for array in arrays:
            if not isinstance(array, np.ndarray) or array.shape[:1] != (batch_size,):
                shape = getattr(array, "shape", type(array).__name__)
                msg = f"workload {self.name!r}: make_inputs({batch_size}) returned {shape}"
                raise ValueError(msg)
        return arrays
