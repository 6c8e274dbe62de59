"""summarize() and median_ci(): known values, validation, invariants, CI coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from as_bench.stats import Stats, median_ci, summarize

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples_st = st.lists(finite, min_size=1, max_size=300)
positive_times = st.lists(
    st.floats(min_value=1e-9, max_value=10.0, allow_nan=False), min_size=1, max_size=300
)


def test_single_sample() -> None:
    s = summarize([0.5])
    assert (s.n, s.median, s.mean, s.stdev, s.min, s.max) == (1, 0.5, 0.5, 0.0, 0.5, 0.5)
    assert (s.q1, s.q3, s.iqr, s.p90, s.p95, s.p99) == (0.5, 0.5, 0.0, 0.5, 0.5, 0.5)
    assert (s.ci_low, s.ci_high, s.outliers) == (0.5, 0.5, 0)


def test_known_values_match_numpy_linear_quantiles() -> None:
    x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    s = summarize(x)
    qs = np.quantile(x, [0.25, 0.5, 0.75, 0.9, 0.95, 0.99])
    assert [s.q1, s.median, s.q3, s.p90, s.p95, s.p99] == pytest.approx(list(qs))
    assert s.mean == pytest.approx(3.9)
    assert s.stdev == pytest.approx(float(np.std(x, ddof=1)))
    assert s.iqr == pytest.approx(s.q3 - s.q1)
    assert (s.min, s.max, s.n) == (1.0, 9.0, 10)


def test_tukey_outliers_counted_not_removed() -> None:
    x = [1.0] * 20 + [1.1] * 20 + [100.0, -50.0]
    s = summarize(x)
    assert s.outliers == 2
    assert s.n == 42
    assert s.max == 100.0


def test_relative_properties() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.relative_iqr == pytest.approx(s.iqr / s.median)
    assert s.ci_halfwidth_relative == pytest.approx(
        max(s.median - s.ci_low, s.ci_high - s.median) / s.median
    )
    assert summarize([0.0, 0.0]).relative_iqr == float("inf")


@pytest.mark.parametrize("bad", [[], np.array([])])
def test_empty_input_is_a_clear_error(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        summarize(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_samples_are_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, value, 2.0])


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5])
def test_ci_level_must_be_inside_zero_one(level: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        summarize([1.0, 2.0], ci_level=level)
    with pytest.raises(ValueError, match="between 0 and 1"):
        median_ci([1.0, 2.0], level)


def test_median_ci_ranks_match_the_binomial_table() -> None:
    # Classic tables: n=10 -> ranks (2, 9) at 95%; n=100 -> ranks (40, 61).
    assert median_ci(np.arange(1.0, 11.0), 0.95) == (2.0, 9.0)
    assert median_ci(np.arange(1.0, 101.0), 0.95) == (40.0, 61.0)
    # 99% is wider than 95%, 50% narrower.
    lo99, hi99 = median_ci(np.arange(1.0, 101.0), 0.99)
    lo50, hi50 = median_ci(np.arange(1.0, 101.0), 0.50)
    assert lo99 < 40.0 < lo50 and hi50 < 61.0 < hi99


def test_median_ci_tiny_samples_fall_back_to_min_max() -> None:
    for n in range(2, 6):  # no symmetric interval reaches 95% with five samples or fewer
        x = np.arange(1.0, n + 1.0)
        assert median_ci(x, 0.95) == (1.0, float(n))
    assert median_ci([7.0], 0.95) == (7.0, 7.0)
    with pytest.raises(ValueError, match="at least one sample"):
        median_ci([], 0.95)


def test_median_ci_large_n_does_not_underflow() -> None:
    x = np.arange(1.0, 200_001.0)
    lo, hi = median_ci(x, 0.95)
    assert lo < 100_000.5 < hi
    assert hi - lo < 1000  # about 1.96 * sqrt(n)


def _check_invariants(s: Stats, n: int) -> None:
    assert s.n == n
    assert s.min <= s.q1 <= s.median <= s.q3 <= s.max
    assert s.ci_low <= s.median <= s.ci_high
    assert s.min <= s.ci_low and s.ci_high <= s.max
    assert s.median <= s.p90 <= s.p95 <= s.p99 <= s.max
    assert s.min <= s.mean <= s.max
    assert 0 <= s.outliers <= n
    assert s.iqr >= 0 and s.stdev >= 0


@settings(max_examples=300, deadline=None)
@given(samples_st)
def test_invariants_hold_for_any_finite_sample(x: list[float]) -> None:
    _check_invariants(summarize(x), len(x))


@settings(max_examples=100, deadline=None)
@given(samples_st, st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_invariants_hold_at_any_level(x: list[float], level: float) -> None:
    s = summarize(x, ci_level=level)
    _check_invariants(s, len(x))
    assert s.ci_level == level


@settings(max_examples=200, deadline=None)
@given(positive_times, st.floats(min_value=1e-6, max_value=1e6))
def test_scale_equivariance(x: list[float], c: float) -> None:
    a = summarize(x)
    b = summarize([c * v for v in x])
    scale = c * max(abs(v) for v in x)
    for field in (
        "median",
        "mean",
        "min",
        "max",
        "q1",
        "q3",
        "iqr",
        "p90",
        "p95",
        "p99",
        "ci_low",
        "ci_high",
        "stdev",
    ):
        assert math.isclose(
            c * getattr(a, field), getattr(b, field), rel_tol=1e-9, abs_tol=1e-9 * scale
        ), field
    # Outlier counts agree except for samples that sit on a fence, where rounding decides.
    fences = (a.q1 - 1.5 * a.iqr, a.q3 + 1.5 * a.iqr)
    on_fence = sum(1 for v in x for f in fences if math.isclose(v, f, rel_tol=1e-9, abs_tol=1e-12))
    assert abs(a.outliers - b.outliers) <= on_fence


def test_median_ci_coverage_by_simulation() -> None:
    # 400 samples of 30 from a skewed distribution with a known median (lognormal: 1.0).
    rng = np.random.default_rng(20261126)
    draws, n, hits = 400, 30, 0
    for _ in range(draws):
        x = np.sort(rng.lognormal(mean=0.0, sigma=0.8, size=n))
        lo, hi = median_ci(x, 0.95)
        hits += lo <= 1.0 <= hi
    coverage = hits / draws
    assert 0.93 <= coverage <= 0.995, coverage


def test_summary_is_a_frozen_validated_model() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert Stats.model_validate_json(s.model_dump_json()) == s
    with pytest.raises(Exception, match="frozen"):
        s.n = 5
