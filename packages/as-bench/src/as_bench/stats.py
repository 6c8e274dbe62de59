"""Statistics of timing samples: robust summaries and the confidence interval of the median.

Timing distributions are skewed and have outliers (interrupts, frequency changes), so the
median and the IQR lead, the confidence interval is for the median (distribution-free,
from order statistics), and outliers are counted with Tukey's fences rather than dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Stats", "median_ci", "summarize"]


class Stats(BaseModel):
    """Summary of a sample of times (seconds).

    Attributes:
        n: Number of samples.
        median: The median.
        mean: The arithmetic mean.
        stdev: Sample standard deviation (0 for one sample).
        min: The smallest sample.
        max: The largest sample.
        q1: First quartile.
        q3: Third quartile.
        iqr: ``q3 - q1``.
        p90: 90th percentile.
        p95: 95th percentile.
        p99: 99th percentile.
        ci_level: Confidence level of ``ci_low``/``ci_high`` (e.g. 0.95).
        ci_low: Lower end of the confidence interval of the median.
        ci_high: Upper end of the confidence interval of the median.
        outliers: Samples outside Tukey's fences (``q1 - 1.5·iqr``, ``q3 + 1.5·iqr``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(ge=1)
    median: float
    mean: float
    stdev: float = Field(ge=0)
    min: float
    max: float
    q1: float
    q3: float
    iqr: float = Field(ge=0)
    p90: float
    p95: float
    p99: float
    ci_level: float = Field(gt=0, lt=1)
    ci_low: float
    ci_high: float
    outliers: int = Field(ge=0)

    @property
    def relative_iqr(self) -> float:
        """IQR divided by the median: the noise measure behind the noise warning."""
        return self.iqr / self.median if self.median > 0 else float("inf")

    @property
    def ci_halfwidth_relative(self) -> float:
        """The wider side of the median's CI, relative to the median (0.01 = ±1%)."""
        if self.median <= 0:
            return float("inf")
        return max(self.median - self.ci_low, self.ci_high - self.median) / self.median


def median_ci(
    sorted_samples: Sequence[float] | npt.NDArray[np.float64], level: float = 0.95
) -> tuple[float, float]:
    """Distribution-free confidence interval of the median, from order statistics.

    The number of samples below the true median follows Bin(n, 1/2) whatever the
    distribution (for continuous ones), so the interval between the order statistics of
    ranks ``j`` and ``n + 1 - j`` (1-based) covers the median with probability
    ``P(j <= B <= n - j)``, ``B ~ Bin(n, 1/2)``. The narrowest such symmetric interval
    whose coverage is at least ``level`` is returned. With too few samples for any
    interval to reach ``level`` (n <= 5 at 95%) the fallback is ``(min, max)``, whose
    coverage is then below ``level``.

    Args:
        sorted_samples: The samples in ascending order (not checked).
        level: The confidence level, in (0, 1).

    Returns:
        ``(low, high)``; both equal the sample for one sample.

    Raises:
        ValueError: No samples, or ``level`` outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        msg = f"confidence level must be between 0 and 1 (exclusive), got {level!r}"
        raise ValueError(msg)
    x = np.asarray(sorted_samples, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        msg = "median_ci needs at least one sample, got none"
        raise ValueError(msg)
    # cdf[m] = P(B <= m) for B ~ Bin(n, 1/2), in log space so large n does not underflow:
    # log pmf(i + 1) = log pmf(i) + log((n - i) / (i + 1)), log pmf(0) = -n log 2.
    i = np.arange(n, dtype=np.float64)
    log_pmf = np.empty(n + 1)
    log_pmf[0] = -n * math.log(2.0)
    log_pmf[1:] = log_pmf[0] + np.cumsum(np.log((n - i) / (i + 1.0)))
    cdf = np.cumsum(np.exp(log_pmf))
    alpha_half = (1.0 - level) / 2.0
    # Coverage of ranks (j, n + 1 - j) is 1 - 2 P(B <= j - 1): take the largest j with
    # P(B <= j - 1) <= alpha / 2. Only the lower half of the ranks is searched.
    ok = np.flatnonzero(cdf[: (n + 1) // 2] <= alpha_half)
    if ok.size == 0:
        return float(x[0]), float(x[-1])
    j = int(ok[-1]) + 1  # 1-based rank of the lower end
    return float(x[j - 1]), float(x[n - j])


def summarize(samples: Sequence[float] | npt.NDArray[np.float64], ci_level: float = 0.95) -> Stats:
    """Summarise timing samples: quantiles, moments, the median's CI and outliers.

    Quantiles use linear interpolation between order statistics (NumPy's default
    ``"linear"`` method); the confidence interval of the median is :func:`median_ci`;
    outliers are the samples outside Tukey's fences ``[q1 - 1.5 iqr, q3 + 1.5 iqr]``,
    counted, never removed. ``summarize(c * x)`` equals ``c * summarize(x)`` for
    ``c > 0`` up to rounding.

    Args:
        samples: The samples (seconds, usually), in any order.
        ci_level: Confidence level of the median's interval, in (0, 1).

    Returns:
        The :class:`Stats` of the samples.

    Raises:
        ValueError: No samples, a sample that is NaN or infinite, or ``ci_level``
            outside (0, 1).
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        msg = "summarize needs at least one sample, got none"
        raise ValueError(msg)
    finite = np.isfinite(x)
    if not finite.all():
        bad = x[~finite]
        msg = (
            f"summarize needs finite samples; {bad.size} of {x.size} are not "
            f"(first: {bad[0]!r} at index {int(np.flatnonzero(~finite)[0])})"
        )
        raise ValueError(msg)
    if not 0.0 < ci_level < 1.0:
        msg = f"ci_level must be between 0 and 1 (exclusive), got {ci_level!r}"
        raise ValueError(msg)
    x = np.sort(x)
    n = int(x.size)
    lo, hi = float(x[0]), float(x[-1])
    q = np.quantile(x, [0.25, 0.5, 0.75, 0.90, 0.95, 0.99], method="linear")
    # Interpolation can be off by an ulp; order statistics are monotone, so enforce it.
    q = np.clip(np.maximum.accumulate(q), lo, hi)
    q1, median, q3, p90, p95, p99 = (float(v) for v in q)
    ci_low, ci_high = median_ci(x, ci_level)
    ci_low, ci_high = min(ci_low, median), max(ci_high, median)
    iqr = max(q3 - q1, 0.0)
    fence_low, fence_high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    outliers = int(np.count_nonzero((x < fence_low) | (x > fence_high)))
    mean = min(max(float(np.mean(x)), lo), hi)
    stdev = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return Stats(
        n=n,
        median=median,
        mean=mean,
        stdev=stdev,
        min=lo,
        max=hi,
        q1=q1,
        q3=q3,
        iqr=iqr,
        p90=p90,
        p95=p95,
        p99=p99,
        ci_level=ci_level,
        ci_low=ci_low,
        ci_high=ci_high,
        outliers=outliers,
    )
