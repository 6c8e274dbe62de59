"""Class probabilities from a classifier's outputs, as the manifest describes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from as_deploy.manifest import Manifest

__all__ = ["class_probabilities"]


def class_probabilities(
    manifest: Manifest, outputs: Mapping[str, npt.ArrayLike]
) -> npt.NDArray[np.float64] | None:
    """Softmax probabilities ``(N, len(labels))`` of a classifier's scores, or ``None``.

    A model is a classifier here when its manifest has labels and it has exactly one
    output, 2-D, with one score (logit) per label; the probabilities are in label order.
    The server's ``predictions`` (the top class of each row) come from the same figures.

    Args:
        manifest: The model version's manifest.
        outputs: Its outputs by name (arrays or nested lists, as a predict answers).
    """
    labels = manifest.labels
    if not labels or len(outputs) != 1:
        return None
    scores: npt.NDArray[Any] = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        return None
    shifted = scores - scores.max(axis=1, keepdims=True)
    probabilities: npt.NDArray[np.float64] = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities
