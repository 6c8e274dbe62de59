"""The comparison's statistics: Mann-Whitney U against SciPy, the bootstrap CI's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from as_bench.compare._stats import (
    bootstrap_ratio_ci,
    mann_whitney_u,
    point_estimates,
)
from as_bench.stats import summarize


def _scipy(x: np.ndarray, y: np.ndarray, method: str = "auto") -> tuple[float, float]:
    # Only the tests that compare with SciPy need it (it is a test-only dependency).
    scipy_stats = pytest.importorskip("scipy.stats", reason="SciPy is the reference here")
    found = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    return float(found.statistic), float(found.pvalue)


def _check(x: np.ndarray, y: np.ndarray) -> None:
    ours = mann_whitney_u(x, y)
    u, p = _scipy(x, y)
    assert ours.u == pytest.approx(u, abs=1e-9)
    assert ours.p_value == pytest.approx(p, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_mwu_matches_scipy_on_continuous_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = (int(v) for v in rng.integers(9, 400, size=2))
    x = rng.lognormal(0.0, 0.2, m)
    y = rng.lognormal(rng.uniform(-0.1, 0.1), 0.2, n)
    assert mann_whitney_u(x, y).method == "asymptotic"
    _check(x, y)


@pytest.mark.parametrize("seed", range(20))
def test_mwu_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    m, n = (int(v) for v in rng.integers(2, 200, size=2))
    # Timer ticks: few distinct values, so many ties (as a coarse clock gives).
    x = rng.integers(10, 16, m).astype(np.float64) * 1e-6
    y = rng.integers(11, 17, n).astype(np.float64) * 1e-6
    assert mann_whitney_u(x, y).method == "asymptotic"
    _check(x, y)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 3), (3, 8), (5, 5), (8, 8), (4, 60), (8, 300)])
def test_mwu_is_exact_for_a_small_side_without_ties(m: int, n: int) -> None:
    rng = np.random.default_rng(m * 1000 + n)
    x = rng.normal(0.0, 1.0, m)
    y = rng.normal(0.8, 1.0, n)
    ours = mann_whitney_u(x, y)
    assert ours.method == "exact"
    u, p = _scipy(x, y, method="exact")
    assert ours.u == u
    assert ours.p_value == pytest.approx(p, rel=1e-9)


def test_mwu_exact_p_values_by_hand() -> None:
    # 3 vs 3, fully separated: only 1 of C(6, 3) = 20 orderings is as extreme each way.
    assert mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).p_value == pytest.approx(2 / 20)
    assert mann_whitney_u([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]).u == 9.0
    # 2 vs 2: U takes 0, 1, 2, 2, 3, 4 over the 6 orderings.
    assert mann_whitney_u([1.0, 3.0], [2.0, 4.0]).p_value == pytest.approx(2 * 2 / 6)
    # U at its mean: the two-sided p (4/3 by the formula) is capped at 1.
    assert mann_whitney_u([1.0, 4.0], [2.0, 3.0]).p_value == 1.0


def test_mwu_all_tied_gives_p_one() -> None:
    ours = mann_whitney_u([1.0] * 12, [1.0] * 15)
    assert ours.p_value == 1.0
    assert _scipy(np.ones(12), np.ones(15))[1] == pytest.approx(1.0)


def test_mwu_far_tail_stays_positive_and_tiny() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 0.01, 500)
    y = rng.normal(1.2, 0.01, 500)
    ours = mann_whitney_u(x, y)
    _, p = _scipy(x, y)
    assert ours.p_value < 1e-100
    assert ours.p_value == pytest.approx(p, rel=1e-6)


def test_mwu_refuses_empty_and_non_finite_samples() -> None:
    with pytest.raises(ValueError, match="x has no samples"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="y has samples that are NaN"):
        mann_whitney_u([1.0], [math.nan])


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(st.integers(0, 12), min_size=1, max_size=40),
    y=st.lists(st.integers(0, 12), min_size=1, max_size=40),
)
def test_mwu_property_matches_scipy_and_is_symmetric(x: list[int], y: list[int]) -> None:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    forward, backward = mann_whitney_u(a, b), mann_whitney_u(b, a)
    assert forward.u + backward.u == pytest.approx(len(x) * len(y))
    assert forward.p_value == pytest.approx(backward.p_value, rel=1e-12, abs=1e-15)
    assert 0.0 <= forward.p_value <= 1.0
    u, p = _scipy(a, b)
    if math.isnan(p):  # SciPy: one value on each side, equal (0/0); ours says 1
        assert forward.p_value == 1.0
        return
    assert forward.u == pytest.approx(u)
    assert forward.p_value == pytest.approx(p, rel=1e-9, abs=1e-12)


def test_bootstrap_ci_covers_the_true_ratio_of_lognormal_medians() -> None:
    # The median of lognormal(mu, s) is exp(mu): the true ratio is exp(shift).
    trials, covered = 100, 0
    for trial in range(trials):
        rng = np.random.default_rng(10_000 + trial)
        shift = rng.uniform(-0.2, 0.2)
        base = rng.lognormal(-7.0, 0.3, 120)
        new = rng.lognormal(-7.0 + shift, 0.3, 150)
        low, high = bootstrap_ratio_ci(base, new, seed=trial)
        assert low <= high
        covered += low <= math.exp(shift) <= high
    assert covered >= 90, f"the 95% interval covered the true ratio in {covered} of {trials}"


def test_bootstrap_ci_is_reproducible_and_brackets_the_ratio() -> None:
    rng = np.random.default_rng(3)
    base, new = rng.lognormal(0, 0.1, 300), rng.lognormal(0.1, 0.1, 200)
    first = bootstrap_ratio_ci(base, new, seed=42)
    assert bootstrap_ratio_ci(base, new, seed=42) == first
    ratio = np.median(new) / np.median(base)
    assert first[0] < ratio < first[1]
    # A wider level gives a wider interval from the same resamples.
    wide = bootstrap_ratio_ci(base, new, seed=42, level=0.99)
    assert wide[0] <= first[0] and wide[1] >= first[1]


def test_bootstrap_ci_of_single_samples_is_the_ratio() -> None:
    assert bootstrap_ratio_ci([2.0], [3.0]) == (1.5, 1.5)


def test_bootstrap_ci_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="not positive"):
        bootstrap_ratio_ci([0.0, 0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ratio_ci([1.0], [1.0], level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ratio_ci([1.0], [1.0], resamples=0)


def test_point_estimates_agree_with_summarize() -> None:
    samples = np.random.default_rng(5).gamma(2.0, 1e-4, 257) + 1e-3
    stats = summarize(samples)
    values = point_estimates(samples)
    assert values["median"] == pytest.approx(stats.median, rel=1e-12)
    assert values["mean"] == pytest.approx(stats.mean, rel=1e-12)
    assert values["p95"] == pytest.approx(stats.p95, rel=1e-12)
