"""The pytest plugin's regression gate: ``--as-bench-compare`` and ``--as-bench-fail-on``.

The comparison is :func:`as_bench.compare.compare_results`, the one ``as-bench compare``
runs, so a gate in pytest and a gate in CI scripts agree on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from as_bench.compare import (
    NOISY_REL_IQR,
    BenchmarkComparison,
    Comparison,
    Side,
    ThresholdSet,
    compare_results,
    inconclusive_reason,
    parse_threshold,
    read_side,
)
from as_bench.exceptions import AsBenchError, ThresholdError
from as_bench.pytest_plugin._terminal import Line, format_table
from as_bench.results import BenchmarkResult, machine_id
from as_core.fmt import format_seconds

__all__ = ["Gate", "load_baseline", "parse_fail_on", "run_gate"]


def parse_fail_on(expressions: Sequence[str]) -> ThresholdSet:
    """The ``--as-bench-fail-on`` expressions as the default thresholds of every benchmark.

    Raises:
        pytest.UsageError: An expression does not parse; the message quotes it and lists
            the accepted forms.
    """
    thresholds = []
    for text in expressions:
        try:
            thresholds.append(parse_threshold(text))
        except ThresholdError as exc:
            raise pytest.UsageError(f"as-bench: --as-bench-fail-on {text!r}: {exc}") from exc
    return ThresholdSet(default=thresholds)


def load_baseline(path: Path, *, latest: bool = False) -> Side:
    """Read the baseline as ``as-bench compare`` reads a side (see :func:`read_side`).

    Args:
        path: The baseline (``PATH@RUN`` picks a run); with ``latest``, the store whose
            latest run of this machine is the baseline.
        latest: ``--as-bench-compare`` was given without a value.

    Raises:
        pytest.UsageError: It is missing, empty, corrupt or of an unknown format, or
            holds no such run; the message names the path and what a baseline is.
    """
    try:
        return read_side(path, machine=machine_id())
    except AsBenchError as exc:
        if latest:
            raise pytest.UsageError(
                f"as-bench: --as-bench-compare (the latest run in --as-bench-store {path}): "
                f"{exc}; store a run there first (a session with --as-bench-store {path} "
                "and no --as-bench-compare), then compare the next one with it"
            ) from exc
        raise pytest.UsageError(
            f"as-bench: --as-bench-compare {path}: {exc}; {_EXPECTED_BASELINE}"
        ) from exc


_EXPECTED_BASELINE = (
    "expected a baseline: a result store folder written by --as-bench-store (or "
    "`as-bench run`), or a results file (.json, .csv, .parquet) exported from one"
)


@dataclass(frozen=True)
class Gate:
    """The session's results compared with the baseline, and the gate's verdict.

    Attributes:
        baseline: Where the baseline came from, in words (its path, and its run when it
            is one of several).
        comparison: The comparison of the benchmarks this session measured.
        thresholds: The ``--as-bench-fail-on`` thresholds; ``None`` when not gating.
        rootpath: pytest's rootdir, which the benchmarks' names (node ids) are relative to.
        allow_inconclusive: Whether an inconclusive verdict is accepted
            (``--as-bench-allow-inconclusive``) rather than failing the run.
    """

    baseline: str
    comparison: Comparison
    thresholds: ThresholdSet | None
    rootpath: Path
    allow_inconclusive: bool = False

    @property
    def failures(self) -> list[BenchmarkComparison]:
        """The benchmarks that regressed beyond a threshold."""
        return self.comparison.failures

    @property
    def inconclusive(self) -> list[BenchmarkComparison]:
        """The benchmarks that exceeded a threshold on a run too noisy to judge."""
        return self.comparison.inconclusive

    @property
    def nothing_compared(self) -> bool:
        """Whether the session measured benchmarks but none of them is in the baseline."""
        return not self.comparison.items

    @property
    def failed(self) -> bool:
        """Whether the run fails: nothing compared, a regression, or an inconclusive verdict.

        An inconclusive one does not fail with :attr:`allow_inconclusive`.
        """
        if self.nothing_compared or self.failures:
            return True
        return bool(self.inconclusive) and not self.allow_inconclusive

    def lines(self) -> list[Line]:
        """The terminal summary lines, each with its markup.

        Warnings first, then the table, the benchmarks without a baseline, and the
        verdict naming each failing benchmark with its reasons.
        """
        comparison = self.comparison
        count = len(comparison.items)
        head = f"as-bench: {count} benchmark(s) compared with {self.baseline}"
        if comparison.geomean_ratio is not None:
            head += f" (geometric mean of ratios {comparison.geomean_ratio:.3f})"
        lines: list[Line] = [(head, {})]
        lines.extend(
            (f"warning: {text}", {"yellow": True}) for text in comparison.environment_warnings
        )
        if comparison.items:
            lines.extend((row, {}) for row in _comparison_table(comparison.items))
            if any(item.estimator != "median" for item in comparison.items):
                lines.append((_BUSY_LEGEND, {}))
        if comparison.only_in_new:
            names = ", ".join(comparison.only_in_new)
            lines.append((f"not in the baseline (not compared): {names}", {}))
        if self.nothing_compared:
            lines.append((_NOTHING_MATCHED.format(rootdir=self.rootpath), {"yellow": True}))
            measured = ", ".join(comparison.only_in_new)
            lines.append(
                (
                    f"as-bench FAILED: nothing compared: no benchmark of this session "
                    f"({measured}) is in the baseline {self.baseline}; expected the "
                    "baseline to hold results of the same benchmarks (the same node ids)",
                    {"red": True, "bold": True},
                )
            )
            return lines
        if self.thresholds is None:
            return lines
        gate = ", ".join(str(t) for t in self.thresholds.default)
        failures, inconclusive = self.failures, self.inconclusive
        if failures:
            lines.append(
                (
                    f"as-bench gate FAILED (--as-bench-fail-on {gate}): "
                    f"{len(failures)} benchmark(s) regressed:",
                    {"red": True, "bold": True},
                )
            )
            for item in failures:
                lines.append((f"  {item.benchmark}: {'; '.join(item.reasons)}", {"red": True}))
        if inconclusive:
            lines.extend(self._inconclusive_lines(gate))
        if not failures and not inconclusive:
            lines.append((f"as-bench gate passed (--as-bench-fail-on {gate})", {"green": True}))
        return lines

    def _inconclusive_lines(self, gate: str) -> list[Line]:
        """The inconclusive verdict, then each benchmark with why (the noise and its limit)."""
        inconclusive = self.inconclusive
        if self.failures:
            head = f"{len(inconclusive)} more benchmark(s) inconclusive:"
        elif self.allow_inconclusive:
            head = (
                f"as-bench gate INCONCLUSIVE (--as-bench-fail-on {gate}), accepted by "
                f"--as-bench-allow-inconclusive: {len(inconclusive)} benchmark(s) "
                "regressed on runs too noisy to judge:"
            )
        else:
            head = (
                f"as-bench gate INCONCLUSIVE (--as-bench-fail-on {gate}): "
                f"{len(inconclusive)} benchmark(s) regressed on runs too noisy to judge "
                "(accept with --as-bench-allow-inconclusive):"
            )
        lines: list[Line] = [(head, {"yellow": True, "bold": True})]
        for item in inconclusive:
            lines.append((f"  {item.benchmark}: {inconclusive_reason(item)}", {"yellow": True}))
        return lines


_BUSY_LEGEND = (
    f"† a busy run (a side's IQR at least {NOISY_REL_IQR:.0%} of its median): the lower "
    "decile, which waiting for a core does not move, is compared instead of the median"
)

# pytest sets the rootdir before plugins' options are known, so an existing folder given
# as `--as-bench-compare PATH` (with a space) counts as a test path and can move it.
_NOTHING_MATCHED = (
    "warning: no benchmark of this session is in the baseline. Names are pytest node ids, "
    "relative to the rootdir ({rootdir}); if the baseline came from these tests, its run "
    "had another rootdir: pin it with --rootdir or a pytest config file, and write "
    "--as-bench-compare=PATH (with '=') so that pytest does not take PATH for a test path"
)


def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _comparison_table(items: Sequence[BenchmarkComparison]) -> list[str]:
    rows: list[tuple[str, ...]] = [("benchmark", "base", "new", "change", "95% CI", "p", "verdict")]
    for item in items:
        verdict = "FAILED" if item.failed else "INCONCLUSIVE" if item.inconclusive else item.change
        mark = "†" if item.estimator != "median" else ""
        rows.append(
            (
                item.benchmark,
                format_seconds(item.base_estimate_s) + mark,
                format_seconds(item.new_estimate_s) + mark,
                _percent(item.ratio - 1),
                f"[{_percent(item.ratio_ci_low - 1)}, {_percent(item.ratio_ci_high - 1)}]",
                f"{item.p_value:.2g}",
                verdict,
            )
        )
    return format_table(rows)


def run_gate(
    baseline_path: str,
    baseline: Sequence[BenchmarkResult],
    results: Sequence[BenchmarkResult],
    thresholds: ThresholdSet | None,
    rootpath: Path,
    *,
    allow_inconclusive: bool = False,
) -> Gate:
    """Compare the session's results with the baseline's results of the same benchmarks.

    Baseline benchmarks this session did not measure (tests deselected with ``-k``, say)
    are left out rather than reported missing: a partial run gates what it ran.
    """
    measured = {result.benchmark for result in results}
    base = [result for result in baseline if result.benchmark in measured]
    comparison = compare_results(base, results, thresholds=thresholds)
    return Gate(baseline_path, comparison, thresholds, rootpath, allow_inconclusive)
