"""Data that torch-side techniques (pruning fine-tuning, distillation) train on.

A workload's data is split once by the search: calibration examples (never scored on)
and scoring examples. Techniques that train get :class:`TrainingData`: a workload's own
training split when it has one, otherwise the calibration examples, where the teacher's
outputs are the targets (no scored example is ever trained on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TrainingData"]

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class TrainingData:
    """Examples a technique may train on.

    Attributes:
        inputs: Model inputs, one array per model input, first axis = examples.
        labels: Class labels for classifiers when known, else ``None`` (the teacher's
            outputs are then the only target).
        name: Where the examples came from, for reports.
    """

    inputs: tuple[Array, ...]
    labels: Array | None
    name: str

    def __post_init__(self) -> None:
        """Refuse arrays that do not line up."""
        if not self.inputs:
            raise ValueError("training data needs at least one input array")
        rows = {int(np.asarray(a).shape[0]) for a in self.inputs}
        if self.labels is not None:
            rows.add(int(np.asarray(self.labels).shape[0]))
        if len(rows) != 1:
            raise ValueError(f"training data arrays disagree on the number of examples: {rows}")

    def __len__(self) -> int:
        """Number of examples."""
        return int(np.asarray(self.inputs[0]).shape[0])
