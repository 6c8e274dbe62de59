"""The statistics of a comparison, in NumPy alone: the Mann-Whitney U test and a bootstrap CI.

- :func:`mann_whitney_u`: the two-sided Mann-Whitney U (Wilcoxon rank-sum) test on two
  raw samples. With no ties and at most 8 values on one side the p-value is exact (from
  the distribution of U, a Gaussian binomial coefficient counted in integers); otherwise
  it is the normal approximation with the tie-corrected variance and a continuity
  correction of 1/2. That is the choice and the arithmetic of
  ``scipy.stats.mannwhitneyu(x, y, alternative="two-sided")`` (method ``"auto"``), whose
  p-values the tests check this against.
- :func:`bootstrap_ratio_ci`: the percentile bootstrap interval of
  ``median(new) / median(base)``, each side resampled on its own with a seeded
  :class:`numpy.random.Generator`, so the same data always gives the same interval.
- :func:`point_estimates`: median, mean and p95 of raw samples, with the quantile method
  :func:`as_bench.stats.summarize` uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_MAX_SIDE",
    "MannWhitneyResult",
    "bootstrap_ratio_ci",
    "mann_whitney_u",
    "point_estimates",
]

EXACT_MAX_SIDE = 8
"""Without ties, the p-value is exact when one side has at most this many values."""

_Samples = Sequence[float] | npt.NDArray[np.float64]


class MannWhitneyResult(NamedTuple):
    """The outcome of :func:`mann_whitney_u`.

    Attributes:
        u: U of the first sample (``x``): the number of pairs ``(x_i, y_j)`` with
            ``x_i > y_j``, ties counting one half.
        p_value: The two-sided p-value, in [0, 1].
        method: ``"exact"`` or ``"asymptotic"`` (normal approximation).
    """

    u: float
    p_value: float
    method: Literal["exact", "asymptotic"]


def _as_array(samples: _Samples, name: str) -> npt.NDArray[np.float64]:
    a = np.asarray(samples, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} has no samples")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has samples that are NaN or infinite")
    return a


def _u_counts(m: int, n: int) -> list[int]:
    """How many of the ``C(m + n, m)`` orderings give each U = 0 .. m·n.

    They are the coefficients of the Gaussian binomial ``[m + n choose m]_q`` =
    ``prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)``. Python integers keep them exact: the
    products subtract, and floats would lose the small tail counts that p-values need.
    """
    size = m * n + 1
    poly = [1] + [0] * (size - 1)
    for i in range(1, m + 1):
        # Multiply by (1 - q^(n+i)), truncated at degree m·n (higher terms cancel).
        shift = n + i
        for k in range(size - 1, shift - 1, -1):
            poly[k] -= poly[k - shift]
        # Divide by (1 - q^i): a running sum with stride i.
        for k in range(i, size):
            poly[k] += poly[k - i]
    return poly


def _exact_p(u_big: float, m: int, n: int) -> float:
    counts = _u_counts(min(m, n), max(m, n))
    k = math.ceil(u_big)  # without ties U is a whole number; ceil guards rounding
    tail = sum(counts[k:])
    total = math.comb(m + n, m)
    return min(1.0, float(Fraction(2 * tail, total)))


def mann_whitney_u(x: _Samples, y: _Samples) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U test: do ``x`` and ``y`` come from one distribution?

    Ranks are averaged over ties. Without ties and with at most :data:`EXACT_MAX_SIDE`
    values on one side, the p-value is exact: ``2 · P(U >= max(U_x, U_y))``. Otherwise
    ``z = (max(U_x, U_y) - m·n/2 - 1/2) / s`` with the tie-corrected variance
    ``s² = m·n/12 · ((N + 1) - sum(t³ - t) / (N(N - 1)))`` (``t``: the sizes of the groups
    of tied values) and ``p = 2 · (1 - Phi(z))``, capped at 1. When every value is tied
    (``s = 0``) the samples cannot be told apart and ``p = 1``.

    Args:
        x: The first sample (e.g. the baseline's times).
        y: The second sample.

    Returns:
        U of ``x``, the p-value and the method used.

    Raises:
        ValueError: A sample is empty or holds NaN or infinity.
    """
    a = _as_array(x, "x")
    b = _as_array(y, "y")
    m, n = int(a.size), int(b.size)
    combined = np.concatenate([a, b])
    values, inverse, counts = np.unique(combined, return_inverse=True, return_counts=True)
    del values
    # Average rank of each group of equal values: the ranks before it, plus (t + 1) / 2.
    before = np.cumsum(counts) - counts
    ranks = (before + (counts + 1) / 2.0)[inverse]
    u_x = float(ranks[:m].sum()) - m * (m + 1) / 2.0
    u_big = max(u_x, m * n - u_x)
    ties = bool((counts > 1).any())
    if not ties and min(m, n) <= EXACT_MAX_SIDE:
        return MannWhitneyResult(u_x, _exact_p(u_big, m, n), "exact")
    total = m + n
    tie_term = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    if variance <= 0.0:
        return MannWhitneyResult(u_x, 1.0, "asymptotic")
    z = (u_big - m * n / 2.0 - 0.5) / math.sqrt(variance)
    # 2 · P(Z > z) = erfc(z / √2), accurate far into the tail where 1 - Φ(z) is not.
    p = math.erfc(z / math.sqrt(2.0))
    return MannWhitneyResult(u_x, min(1.0, max(0.0, p)), "asymptotic")


# Resampled values held in memory at once by the bootstrap (8 bytes each).
_CHUNK_VALUES = 2_000_000


def _bootstrap_quantiles(
    samples: npt.NDArray[np.float64], q: float, resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    n = int(samples.size)
    values = np.empty(resamples)
    rows = max(1, _CHUNK_VALUES // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        picks = rng.integers(0, n, size=(stop - start, n))
        if q == 0.5:
            values[start:stop] = np.median(samples[picks], axis=1)
        else:
            values[start:stop] = np.quantile(samples[picks], q, axis=1, method="linear")
    return values


def bootstrap_ratio_ci(
    base: _Samples,
    new: _Samples,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    quantile: float = 0.5,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``median(new) / median(base)``.

    With ``quantile`` other than 0.5, of the ratio of that quantile instead (the gate's
    busy-machine rule uses the lower decile, 0.1).

    Each side is resampled with replacement on its own (the two runs are independent),
    ``resamples`` times; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of the resampled ratios. The generator is seeded, so the same samples and
    seed always give the same interval.

    Args:
        base: The baseline's samples (all positive for the ratio to mean anything).
        new: The candidate's samples.
        level: Confidence level, in (0, 1).
        resamples: Bootstrap resamples per side.
        seed: Seed of the :class:`numpy.random.Generator`.
        quantile: The quantile whose ratio is estimated, in (0, 1); the median by default.

    Returns:
        ``(low, high)``; both the plain ratio when each side has one sample.

    Raises:
        ValueError: An empty sample, NaN or infinity, a median of the baseline that is
            not positive, ``level`` outside (0, 1) or ``resamples`` below 1.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be between 0 and 1 (exclusive), got {quantile!r}")
    a = _as_array(base, "base")
    b = _as_array(new, "new")
    if float(np.median(a)) <= 0.0:
        raise ValueError("the baseline's median is not positive: no ratio to it")
    rng = np.random.default_rng(seed)
    base_medians = _bootstrap_quantiles(a, quantile, resamples, rng)
    new_medians = _bootstrap_quantiles(b, quantile, resamples, rng)
    # A resample of a baseline with zeros can have median 0; such a ratio is unbounded.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(base_medians > 0, new_medians / base_medians, np.inf)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def point_estimates(samples: _Samples) -> dict[str, float]:
    """``median``, ``mean``, ``p95`` and ``p10`` of raw samples (linear quantiles).

    The quantile method is the one :func:`as_bench.stats.summarize` uses.

    Raises:
        ValueError: No samples, or NaN or infinity among them.
    """
    a = _as_array(samples, "samples")
    p10, median, p95 = np.quantile(a, [0.1, 0.5, 0.95], method="linear")
    return {
        "median": float(median),
        "mean": float(np.mean(a)),
        "p95": float(p95),
        "p10": float(p10),
    }
