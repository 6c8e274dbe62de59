"""class_probabilities: a classifier's outputs as probabilities per label, or None."""

from __future__ import annotations

import numpy as np
import pytest

from as_deploy.repository import ModelRepository
from as_deploy.runtime import class_probabilities, load_runner
from as_deploy.server import default_repository


def test_the_default_digits_model_gives_probabilities_that_pick_the_true_digit() -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits ship in scikit-learn")
    digits = datasets.load_digits()
    model = ModelRepository(default_repository()).load("digits-cnn")
    runner = load_runner(model)
    try:
        images = (digits.images[:50] / 16).astype(np.float32)[:, None]
        outputs = runner.run({"input": images})
    finally:
        runner.close()
    probabilities = class_probabilities(model.manifest.labels, outputs)
    assert probabilities is not None and probabilities.shape == (50, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert (probabilities.argmax(axis=1) == digits.target[:50]).mean() > 0.9
    # The same figures from the nested lists a predict answers with.
    as_lists = class_probabilities(model.manifest.labels, {"logits": outputs["logits"].tolist()})
    assert as_lists is not None
    np.testing.assert_allclose(as_lists, probabilities, rtol=1e-6)


def test_huge_logits_stay_finite_and_not_a_classifier_gives_none() -> None:
    manifest = ModelRepository(default_repository()).load("digits-cnn").manifest
    logits = np.zeros((1, 10))
    logits[0, 7] = 1e6
    probabilities = class_probabilities(manifest.labels, {"logits": logits})
    assert probabilities is not None and probabilities[0, 7] == 1.0
    assert class_probabilities(manifest.labels, {"logits": np.zeros((1, 9))}) is None
    two = {"a": np.zeros((1, 10)), "b": np.zeros((1, 10))}
    assert class_probabilities(manifest.labels, two) is None
    assert class_probabilities(None, {"logits": logits}) is None
    assert class_probabilities([], {"logits": logits}) is None
