"""Suites: what ``as-bench run`` measures (:mod:`._definition`) and running it (:mod:`._runner`).

A suite file names workloads, backends, devices and batch sizes; :func:`load_suite` reads
and checks it (with environment overrides and profiles, through as-config), and
:func:`run_suite` measures every combination: prepared in the backend, its outputs
checked against eager PyTorch, measured, scored and appended to the result store::

    from as_bench.suite import load_suite, run_suite

    report = run_suite(load_suite("suite.yaml", profile="nightly"))
    print(len(report.results), report.problems)
"""

from __future__ import annotations

from as_bench.suite._definition import DEFAULT_RESULTS_DIR, MeasureSection, Suite, load_suite
from as_bench.suite._runner import Combination, Outcome, RunReport, plan, run_suite

__all__ = [
    "DEFAULT_RESULTS_DIR",
    "Combination",
    "MeasureSection",
    "Outcome",
    "RunReport",
    "Suite",
    "load_suite",
    "plan",
    "run_suite",
]
