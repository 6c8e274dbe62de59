"""The detectors' shortcut for values that cannot fire decides exactly as the full rule."""

from __future__ import annotations

import random

import pytest

from as_optimize.training import DivergenceSettings, ExplodingGradientSettings
from as_optimize.training._detectors import DivergenceDetector, ExplodingGradientDetector


def _series(rng: random.Random, n: int) -> list[float | None]:
    values: list[float | None] = []
    level = 2.0
    for _ in range(n):
        roll = rng.random()
        if roll < 0.02:
            values.append(None)
        elif roll < 0.04:
            values.append(float("nan"))
        elif roll < 0.10:
            values.append(level * rng.uniform(3, 40))  # spikes, some of them in a row
        else:
            level = max(level * rng.uniform(0.97, 1.02), 1e-4)
            values.append(level * rng.uniform(0.5, 1.5) - (0.3 if roll > 0.98 else 0.0))
    return values


@pytest.mark.parametrize("seed", range(12))
def test_the_gated_detectors_match_the_exact_rules_step_by_step(seed: int) -> None:
    rng = random.Random(seed)
    window = rng.choice([3, 5, 20, 50])
    divergence = DivergenceSettings(
        factor=rng.choice([1.5, 3.0, 5.0]),
        window=window,
        warmup=rng.choice([0, 3, 20]),
        patience=rng.choice([1, 2, 3]),
        start_fraction=rng.choice([0.0, 0.5]),
    )
    exploding = ExplodingGradientSettings(
        factor=rng.choice([2.0, 10.0]),
        window=window,
        warmup=rng.choice([0, 10]),
        max_norm=rng.choice([None, 30.0]),
    )
    gated_d, exact_d = DivergenceDetector(divergence), DivergenceDetector(divergence)
    gated_e, exact_e = ExplodingGradientDetector(exploding), ExplodingGradientDetector(exploding)
    for index, value in enumerate(_series(rng, 2000)):
        expected = exact_d._observe(value)
        got = gated_d.observe(value)
        assert (got is None) == (expected is None), index
        if got is not None and expected is not None:
            assert got.figures == expected.figures
        expected_e = exact_e._observe(value)
        got_e = gated_e.observe(value)
        assert (got_e is None) == (expected_e is None), index
        if index % 97 == 0:  # reading the state applies what was deferred
            assert gated_d.state_dict() == exact_d.state_dict()
            assert gated_e.state_dict() == exact_e.state_dict()
    assert gated_d.state_dict() == exact_d.state_dict()
    assert gated_d.start_level == exact_d.start_level
