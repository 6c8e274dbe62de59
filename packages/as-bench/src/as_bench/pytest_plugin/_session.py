"""What the pytest plugin keeps for a session: options, results, the store, the gate.

Imported only when a test uses the ``as_bench`` fixture or an ``--as-bench-*`` option is
given; :mod:`as_bench.pytest_plugin` itself stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from as_bench.engine import MeasureOptions
from as_bench.measurement import Measurement
from as_bench.pytest_plugin._options import GATE_REMEASURE_NOISY, PluginSettings
from as_bench.pytest_plugin._terminal import Line, format_table
from as_bench.results import BenchmarkResult, GitInfo, ResultStore, git_info
from as_bench.results._measured import function_result
from as_core.fmt import format_seconds

if TYPE_CHECKING:
    from as_bench.compare import Side, ThresholdSet
    from as_bench.pytest_plugin._gate import Gate

__all__ = ["BenchSession", "MeasuredCall", "build_options"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasuredCall:
    """One measurement a test took, before it is named and turned into a result."""

    name: str | None
    function: str
    measurement: Measurement
    options: MeasureOptions
    batch_size: int
    started_at: datetime
    finished_at: datetime
    base: Measurement | None = None


def build_options(base: MeasureOptions, overrides: Mapping[str, object]) -> MeasureOptions:
    """``base`` with ``overrides`` applied, validated.

    A shorter ``max_time_s`` given without ``min_time_s`` also lowers ``min_time_s`` (1 s
    by default), so ``--as-bench-max-time 0.3`` shortens runs rather than failing.

    Raises:
        ValidationError: The combination is not valid (see :class:`MeasureOptions`).
    """
    data: dict[str, Any] = base.model_dump()
    data.update(overrides)
    if "max_time_s" in overrides and "min_time_s" not in overrides:
        max_time = data["max_time_s"]
        if isinstance(max_time, int | float):
            data["min_time_s"] = min(data["min_time_s"], max_time)
    return MeasureOptions.model_validate(data)


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    return "; ".join(parts)


class BenchSession:
    """The plugin's state for one pytest session (kept in ``config.stash``).

    Attributes:
        settings: What the ``--as-bench-*`` options asked for.
        results: Every result measured in this session, in order.
        unmeasured_calls: Fixture calls that ran their function once without measuring
            (pytest-xdist, ``--as-bench-disable``); on an xdist controller, the workers'.
        gate: The comparison with the baseline, once :meth:`finish` ran with a baseline.
    """

    def __init__(self, settings: PluginSettings, rootpath: Path) -> None:
        """Check the options and load the baseline, before any test runs.

        Raises:
            pytest.UsageError: An option is wrong: an ``--as-bench-fail-on`` expression
                that does not parse, ``--as-bench-fail-on`` without a baseline, a baseline
                that cannot be read, or flags that make no valid MeasureOptions.
        """
        self.settings = settings
        self.results: list[BenchmarkResult] = []
        self.unmeasured_calls = 0
        self.gate: Gate | None = None
        self._rootpath = rootpath
        self._context: tuple[dict[str, Any], GitInfo | None] | None = None
        self._store: ResultStore | None = None
        self._run: dict[str, str] = {}
        self._baseline: list[BenchmarkResult] = []
        self._baseline_side: Side | None = None
        self.base_results: list[BenchmarkResult] = []
        self.without_base: list[tuple[str, str]] = []
        self._base_options = self._check_measure_flags()
        self._thresholds = self._check_fail_on()
        if settings.disabled is None:
            self._baseline = self._load_baseline()

    @property
    def disabled(self) -> str | None:
        """Why measurements are off (the message to print once), or ``None``."""
        return self.settings.disabled

    @property
    def comparing(self) -> bool:
        """Whether the session compares with a baseline at the end."""
        return (
            self.settings.baseline is not None
            or self.settings.compare_latest
            or self.settings.base_source is not None
        )

    @property
    def base_source(self) -> Path | None:
        """The base checkout measured interleaved with this one, or ``None``."""
        return self.settings.base_source

    @property
    def rootpath(self) -> Path:
        """The root of the checkout under test (pytest's rootdir)."""
        return self._rootpath

    def _check_measure_flags(self) -> MeasureOptions:
        base = MeasureOptions.quick() if self.settings.quick else MeasureOptions()
        if self.comparing or self.settings.store is not None:
            # A gate must not decide on a noisy measurement: re-measure it first. A stored
            # run is measured the same way, so that it is a like-for-like baseline later.
            base = base.model_copy(update={"remeasure_noisy": GATE_REMEASURE_NOISY})
        try:
            return build_options(base, self.settings.measure)
        except ValidationError as exc:
            raise pytest.UsageError(
                f"as-bench: the --as-bench-* measurement options are not valid together: "
                f"{_validation_text(exc)}"
            ) from exc

    def _check_fail_on(self) -> ThresholdSet | None:
        source = self.settings.base_source
        if source is not None:
            if self.settings.baseline is not None or self.settings.compare_latest:
                raise pytest.UsageError(
                    "as-bench: --as-bench-base-source and --as-bench-compare are two "
                    "baselines; give one: the base checkout measured in this session, or "
                    "a stored run"
                )
            if not source.is_dir():
                raise pytest.UsageError(
                    f"as-bench: --as-bench-base-source {source}: not a folder; expected a "
                    "checkout of the base revision (git worktree add DIR main)"
                )
        if self.settings.compare_latest and self.settings.store is None:
            raise pytest.UsageError(
                "as-bench: --as-bench-compare without a value compares with the latest run "
                "in the result store, so it needs --as-bench-store DIR (the store earlier "
                "sessions wrote to); or give the baseline: --as-bench-compare=PATH"
            )
        if not self.settings.fail_on:
            return None
        if not self.comparing:
            raise pytest.UsageError(
                "as-bench: --as-bench-fail-on needs a baseline to compare with: "
                "add --as-bench-compare BASELINE (a store folder or a results file)"
            )
        from as_bench.pytest_plugin._gate import parse_fail_on

        return parse_fail_on(self.settings.fail_on)

    def _load_baseline(self) -> list[BenchmarkResult]:
        from as_bench.pytest_plugin._gate import load_baseline

        if self.settings.compare_latest:
            assert self.settings.store is not None  # checked by _check_fail_on
            self._baseline_side = load_baseline(self.settings.store, latest=True)
        elif self.settings.baseline is not None:
            self._baseline_side = load_baseline(self.settings.baseline)
        else:
            return []
        return self._baseline_side.results

    def options_for(self, overrides: Mapping[str, object], *, where: str) -> MeasureOptions:
        """The options of one measurement: the flags' defaults with a marker's fields.

        Raises:
            pytest.fail.Exception: The combination is not valid; the test fails, named.
        """
        if not overrides:
            return self._base_options
        try:
            return build_options(self._base_options, overrides)
        except ValidationError as exc:
            pytest.fail(
                f"{where}: @pytest.mark.as_bench options are not valid with the "
                f"--as-bench-* flags: {_validation_text(exc)}",
                pytrace=False,
            )

    def _run_context(self) -> tuple[dict[str, Any], GitInfo | None]:
        # Probed once per session, on the first result: the probe takes a fraction of a
        # second and must not run in sessions that measure nothing.
        if self._context is None:
            from as_bench.probe import probe

            self._context = (probe().model_dump(mode="json"), git_info(self._rootpath))
        return self._context

    def record(
        self, benchmark: str, workload: str, test: str, call: MeasuredCall
    ) -> BenchmarkResult:
        """Turn one named measurement into a result; store it when a store was asked for.

        Raises:
            ResultStoreError: The store could not be written (the message names it).
        """
        hardware, repo = self._run_context()
        result = function_result(
            call.measurement,
            benchmark=benchmark,
            workload=workload,
            batch_size=call.batch_size,
            hardware=hardware,
            git=repo,
            source="pytest",
            started_at=call.started_at,
            finished_at=call.finished_at,
            tags={"test": test},
            params={"measure": call.options.model_dump(mode="json"), "function": call.function},
        )
        if self.settings.store is not None:
            # Appended as measured, so an interrupted session keeps what it measured. The
            # session is one run of the store, numbered on its first result.
            if self._store is None:
                self._store = ResultStore(self.settings.store)
                number, machine = self._store.new_run()
                self._run = {"run": number, "machine": machine}
            result = result.model_copy(update=self._run)
            self._store.append(result)
        self.results.append(result)
        if call.base is not None:
            base = function_result(
                call.base,
                benchmark=benchmark,
                workload=workload,
                batch_size=call.batch_size,
                hardware=hardware,
                git=git_info(self.base_source) if self.base_source is not None else None,
                source="pytest",
                started_at=call.started_at,
                finished_at=call.finished_at,
                tags={"test": test, "side": "base"},
                params={"measure": call.options.model_dump(mode="json"), "function": call.function},
            )
            self.base_results.append(base)
        return result

    def describe_base(self) -> str:
        """The baseline in words, for the summary."""
        if self.base_source is not None:
            return f"the code in {self.base_source}, measured interleaved in this session"
        assert self._baseline_side is not None
        return self._baseline_side.describe()

    def finish(self) -> None:
        """Compare the session's results with the baseline, if one was given."""
        side = self._baseline_side
        interleaved = self.base_source is not None
        if self.disabled is not None or (side is None and not interleaved) or not self.results:
            return
        from as_bench.pytest_plugin._gate import run_gate

        self.gate = run_gate(
            self.describe_base(),
            self.base_results if interleaved else self._baseline,
            self.results,
            self._thresholds,
            self._rootpath,
            allow_inconclusive=self.settings.allow_inconclusive,
        )

    @property
    def failed(self) -> bool:
        """Whether the gate fails the run (see :attr:`Gate.failed`)."""
        return self.gate is not None and self.gate.failed

    def summary(self) -> list[Line]:
        """The lines of the terminal summary, each with its markup (``red=True``, ...)."""
        if self.disabled is not None:
            if self.unmeasured_calls or self.settings.given:
                return [(self.disabled, {"yellow": True})]
            return []
        lines: list[Line] = []
        if self.results and self.gate is None:
            lines.extend((line, {}) for line in _results_table(self.results))
        for benchmark, why in self.without_base:
            lines.append((f"as-bench: {benchmark}: no base measurement: {why}", {"yellow": True}))
        if self.gate is not None:
            lines.extend(self.gate.lines())
        elif self._baseline_side is not None or self.base_source is not None:
            baseline = self.describe_base()
            text = f"as-bench: nothing measured in this session to compare with {baseline}"
            lines.append((text, {"yellow": True}))
        if self.settings.store is not None and self.results:
            run = f" as run {self._run['run']} ({self._run['machine']})" if self._run else ""
            lines.append(
                (
                    f"as-bench: {len(self.results)} result(s) appended to "
                    f"{self.settings.store}{run}",
                    {},
                )
            )
        return lines


def _rel(value: float, median: float) -> str:
    if median <= 0:
        return "-"
    return f"{(value / median - 1) * 100:+.2f}%"


def _results_table(results: list[BenchmarkResult]) -> list[str]:
    rows = [("benchmark", "device", "latency median", "CI of median", "converged")]
    for result in results:
        stats = result.stats
        rows.append(
            (
                result.benchmark,
                result.device,
                format_seconds(stats.median),
                f"[{_rel(stats.ci_low, stats.median)}, {_rel(stats.ci_high, stats.median)}]",
                "yes" if result.measurement.converged else "no",
            )
        )
    return format_table(rows)
