"""Class probabilities from a classifier's outputs and its manifest's labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["class_probabilities"]


def class_probabilities(
    labels: Sequence[str] | None, outputs: Mapping[str, npt.ArrayLike]
) -> npt.NDArray[np.float64] | None:
    """Softmax probabilities ``(N, len(labels))`` of a classifier's scores, or ``None``.

    A model is a classifier here when its manifest has labels and it has exactly one
    output, 2-D, with one score (logit) per label; the probabilities are in label order.
    The server's ``predictions`` (the top class of each row) come from the same figures.

    Args:
        labels: The manifest's labels (``Manifest.labels``; ``labels`` of
            ``GET /v1/models/{name}``).
        outputs: The outputs by name (arrays, or nested lists as a predict answers).
    """
    if not labels or len(outputs) != 1:
        return None
    scores: npt.NDArray[Any] = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        return None
    shifted = scores - scores.max(axis=1, keepdims=True)
    probabilities: npt.NDArray[np.float64] = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities
