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
never fails. Without thresholds nothing fails.

**The busy-machine rule.** When either side's IQR is at least 10% of its median
(``NOISY_REL_IQR``), that side was measured on a busy machine: other processes took the
CPU in the middle of some samples. Waiting for a core only ever adds time, so the median
and the tail then measure the machine as much as the code (on a 2-core runner with four
CPU-burning processes, the median of an unchanged 1 ms function moved by up to 14% from
run to run, and of a 10 µs one by up to 81%), while the **lower decile**, made of the
samples nothing interrupted, moved by under 1% and 5%. Such a benchmark is judged on the
lower decile instead, for every threshold:

- it **fails** when the lower decile moved beyond the threshold (``p10(new) / p10(base)
  - 1 > r``, or ``p10(new) - p10(base) > a``) and the 95% bootstrap CI of the ratio of
  lower deciles lies entirely above 1;
- it is **inconclusive** when the lower decile moved beyond the threshold but that CI
  reaches 1, or when a tail threshold (``p95``) is exceeded while the lower decile is not
  (the tail of a busy run measures the machine);
- otherwise it passes.

Callers treat an inconclusive gate as a failure unless told to accept it
(``--allow-inconclusive``); :func:`inconclusive_reason` says why in words. The pytest
plugin and ``as-bench run`` re-measure a noisy benchmark before it gets here (more
samples, in fresh processes when the function can be sent to one: see
``MeasureOptions.remeasure_noisy``).

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
    BUSY_QUANTILE,
    NOISY_REL_IQR,
    BenchmarkComparison,
    Comparison,
    Side,
    compare_results,
    inconclusive_reason,
    load_side,
    read_side,
)
from as_bench.compare._environment import environment_differences
from as_bench.compare._thresholds import (
    Threshold,
    ThresholdSet,
    load_thresholds,
    parse_threshold,
)

__all__ = [
    "BUSY_QUANTILE",
    "NOISY_REL_IQR",
    "BenchmarkComparison",
    "Comparison",
    "Side",
    "Threshold",
    "ThresholdSet",
    "compare_results",
    "environment_differences",
    "inconclusive_reason",
    "load_side",
    "load_thresholds",
    "parse_threshold",
    "read_side",
]
