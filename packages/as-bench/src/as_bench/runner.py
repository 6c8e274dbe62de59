"""Alias of :mod:`as_bench.suite`, where the suite runner now lives (with the suite file).

``from as_bench.runner import run_suite`` keeps working; new code imports from
:mod:`as_bench.suite`.
"""

from __future__ import annotations

from as_bench.suite import Combination, Outcome, RunReport, plan, run_suite

__all__ = ["Combination", "Outcome", "RunReport", "plan", "run_suite"]
