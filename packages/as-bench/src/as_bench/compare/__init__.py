"""Compare two sets of results per benchmark, and gate on regressions (``as-bench compare``).

For each benchmark both sides have (matched by name; the latest result of a name when a
side holds several), on the raw samples of the series both sides have (device time where
both have it, else latency):

- the **ratio of medians** ``new / base`` with its 95% **bootstrap** interval (percentile,
  2000 resamples per side, seeded: the same data always gives the same interval);
- the two-sided **Mann-Whitney U** test (exact for tiny samples without ties, else the
  tie-corrected normal approximation with continuity correction);
- the **change**: ``regression`` or ``improvement`` when the test is significant
  (``p < alpha``) and the median moved by at least ``min_effect``; else ``unchanged``.

Across the suite, the **geometric mean** of the ratios. Environment differences (chip,
OS, library versions, thread settings; never timestamps or free memory, see
:func:`environment_differences`) come back as warnings to show above the table.

The gate
--------
A benchmark **fails** a threshold (``median:5%``, ``p95:10%``, ``mean:2ms``) when all of:

1. the change is statistically significant: Mann-Whitney ``p < alpha`` (0.05);
2. the 95% CI of the ratio of medians lies entirely above 1: the slowdown is not noise;
3. the metric's point estimate on the raw samples moved beyond the threshold: relative,
   ``new / base - 1 > r``; absolute, ``new - base > a``.

Improvements never fail (condition 2). A benchmark only one side has is reported and
never fails. Without thresholds nothing fails. A benchmark that meets all three on a
**noisy** run (either side's IQR at least 25% of its median) is
**inconclusive** rather than failed (:func:`inconclusive_reason` says why); callers treat
an inconclusive gate as a failure unless told to accept it (``--allow-inconclusive``).

A ``mean`` or ``p95`` threshold sizes the regression by that metric, while the evidence
that there is one (conditions 1 and 2) comes from the whole distribution and its median.

Samples within one run are not independent of that run's conditions (clock frequency,
other processes, the heat of the chip): with hundreds of samples per side, the test
finds a run-to-run drift of half a percent "significant", and so it should, since it is
real. It is the threshold, not the p-value, that keeps such drift from raising false
alarms: set it above the run-to-run spread of the benchmark on the machine (rerun the
unchanged code a few times to see it). The test and the interval keep a large but noisy
difference from failing on a handful of samples.

Example::

    from as_bench.compare import ThresholdSet, compare_results, load_side

    comparison = compare_results(
        load_side("baseline-results"),
        load_side("as-bench-results"),
        thresholds=ThresholdSet(default=["median:5%"]),
    )
    for item in comparison.failures:
        print(item.benchmark, *item.reasons)
"""

from as_bench.compare._compare import (
    BenchmarkComparison,
    Comparison,
    compare_results,
    inconclusive_reason,
    load_side,
)
from as_bench.compare._environment import environment_differences
from as_bench.compare._thresholds import (
    Threshold,
    ThresholdSet,
    load_thresholds,
    parse_threshold,
)

__all__ = [
    "BenchmarkComparison",
    "Comparison",
    "Threshold",
    "ThresholdSet",
    "compare_results",
    "environment_differences",
    "inconclusive_reason",
    "load_side",
    "load_thresholds",
    "parse_threshold",
]
