"""Run a suite: every workload x backend x device x batch size, checked, measured, stored.

For each combination the runner prepares the model in the backend (exporting on the fly
where the backend needs a file), checks its outputs agree with eager PyTorch on the CPU on
the same inputs (so a fast wrong answer is caught and recorded), measures the backend's
call with the engine on the device the backend says to time, scores it on the workload's
held-out data, and appends a :class:`~as_bench.results.BenchmarkResult` to the store.

One combination failing (an exporter that cannot take a model, a device that runs out of
memory) is recorded as failed and the suite goes on.
"""

from __future__ import annotations

import logging
import math
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np

from as_bench.backends import Backend, OutputCheckResult, check_outputs, evaluate, get_backend
from as_bench.backends import available_backends as _available_backends
from as_bench.engine import MeasureOptions, measure
from as_bench.exceptions import AsBenchError, MissingExtraError, SuiteError, WorkloadError
from as_bench.results import BenchmarkResult, GitInfo, OutputCheck, ResultStore, git_info
from as_bench.suite._definition import Suite
from as_bench.suite._memory import LoadMemory
from as_bench.workloads import Workload, get_workload
from as_core import install_hint

__all__ = ["Combination", "Outcome", "RunReport", "plan", "run_suite"]

logger = logging.getLogger(__name__)

REFERENCE_BACKEND = "torch"
Status = Literal["ok", "mismatch", "failed", "skipped"]


@dataclass(frozen=True)
class Combination:
    """One thing to measure."""

    workload: str
    backend: str
    device: str
    batch_size: int

    @property
    def name(self) -> str:
        """The benchmark's name: ``workload/backend/device/bsN``."""
        return f"{self.workload}/{self.backend}/{self.device}/bs{self.batch_size}"


@dataclass
class Outcome:
    """What became of one combination.

    Attributes:
        combination: What was measured.
        status: ``ok``; ``mismatch`` (measured, but outputs differ from the reference);
            ``failed`` (an error stopped it); ``skipped`` (not possible here).
        result: The stored result (``ok`` and ``mismatch``).
        message: Why it failed, was skipped, or what mismatched.
    """

    combination: Combination
    status: Status
    result: BenchmarkResult | None = None
    message: str = ""


@dataclass
class RunReport:
    """Every outcome of a suite run, and where the results went."""

    suite: Suite
    store: ResultStore
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def results(self) -> list[BenchmarkResult]:
        """The stored results, in run order."""
        return [o.result for o in self.outcomes if o.result is not None]

    @property
    def problems(self) -> list[Outcome]:
        """Outcomes that failed or whose outputs did not match the reference."""
        return [o for o in self.outcomes if o.status in ("failed", "mismatch")]


def _backends(suite: Suite) -> list[Backend]:
    if not suite.backends:
        return _available_backends()
    return [get_backend(name) for name in suite.backends]


def plan(suite: Suite) -> tuple[list[Combination], list[Outcome]]:
    """The combinations a suite asks for that this machine can run, and those it cannot.

    Args:
        suite: The suite.

    Returns:
        The combinations to run, and a skipped outcome (with the reason) for each backend
        or device that is not usable here.
    """
    todo: list[Combination] = []
    skipped: list[Outcome] = []
    for backend in _backends(suite):
        if not backend.is_available():
            skipped.append(_skip(suite, backend.name, "-", _unavailable_reason(backend)))
            continue
        try:
            usable = backend.devices()
        except AsBenchError as exc:
            reason = str(exc) or f"{type(exc).__name__} (no message)"
            skipped.append(_skip(suite, backend.name, "-", reason))
            continue
        wanted = suite.devices or usable
        for device in wanted:
            if device not in usable:
                reason = f"{backend.name} cannot use {device!r} here (it can: {usable or 'none'})"
                skipped.append(_skip(suite, backend.name, device, reason))
                continue
            todo.extend(
                Combination(workload, backend.name, device, size)
                for workload in suite.workloads
                for size in suite.batch_sizes
            )
    return todo, skipped


def _unavailable_reason(backend: Backend) -> str:
    """Why a backend whose :meth:`~Backend.is_available` is false cannot run here."""
    install = install_hint(MissingExtraError.package, backend.extra)
    try:
        # Cheap for an unavailable backend: its library is missing (MissingExtraError at
        # once) or its platform check answers without importing it.
        usable = backend.devices()
    except MissingExtraError:
        return f"not installed here: {install}"
    except Exception as exc:  # a broken install: say what it said
        return f"not usable here: {type(exc).__name__}: {exc or '(no message)'}"
    if not usable:
        where = f"{platform.system()} {platform.machine()}"
        return f"installed, but it cannot run on this platform ({where})"
    return f"some of its libraries are missing: {install}"


def _skip(suite: Suite, backend: str, device: str, reason: str) -> Outcome:
    combo = Combination(",".join(suite.workloads), backend, device, 0)
    return Outcome(combo, "skipped", message=reason)


class _NothingToRunError(SuiteError):
    """Nothing of the suite can run here; ``hint`` (printed by the CLI) says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _nothing_to_run(skipped: list[Outcome]) -> SuiteError:
    torch = install_hint(MissingExtraError.package, "torch")
    if not skipped:  # no backend asked for, none installed
        return _NothingToRunError(
            "nothing to run on this machine: no backend is installed "
            "(as-bench installs no ML framework by default)",
            f"install one, e.g. PyTorch: {torch}",
        )
    reasons = "; ".join(f"{o.combination.backend}: {o.message}" for o in skipped)
    return _NothingToRunError(
        f"nothing to run on this machine ({reasons})",
        "choose a backend and device this machine has (as-bench hw lists them), "
        f"or install one, e.g. PyTorch: {torch}",
    )


def _check_factory_specs(suite: Suite) -> None:
    """Fail once, before anything runs, on a ``pkg.module:factory`` that does not exist.

    Only the import and the attribute are checked; calling the factory (which may train
    a model) is left to the run, where a factory that raises fails its combinations.
    """
    from as_bench.workloads import builtin_workloads
    from as_bench.workloads._loader import resolve_factory

    for spec in suite.workloads:
        if spec in builtin_workloads():
            continue
        try:
            resolve_factory(spec)
        except WorkloadError as exc:
            exc.hint = (  # type: ignore[attr-defined]  # the CLI prints it instead of --debug
                "a workload of your own is 'pkg.module:factory', importable from the current "
                "directory or an installed package"
            )
            raise


def _output_check(check: OutputCheckResult) -> OutputCheck:
    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return OutputCheck(
        reference_backend=REFERENCE_BACKEND,
        max_abs_error=finite(check.max_abs_error),
        max_rel_error=finite(check.max_rel_error),
        top1_agreement=check.top1_agreement,
        cosine_similarity=check.cosine_similarity,
        passed=check.passed,
        tolerance=check.atol,
        rtol=check.rtol,
        failures=list(check.failures),
    )


class _References:
    """Eager PyTorch outputs on the CPU, per workload and batch size, computed once."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._outputs: dict[tuple[str, int], list[np.ndarray[Any, Any]]] = {}

    def outputs(self, workload: Workload, batch_size: int) -> list[np.ndarray[Any, Any]]:
        key = (workload.name, batch_size)
        if key not in self._outputs:
            prepared = get_backend(REFERENCE_BACKEND).prepare(
                workload, "cpu", batch_size, self._workdir
            )
            try:
                self._outputs[key] = prepared.predict(workload.inputs(batch_size))
            finally:
                prepared.close()
        return self._outputs[key]


def _measure_one(
    combo: Combination,
    workload: Workload,
    suite: Suite,
    options: MeasureOptions,
    references: _References,
    workdir: Path,
    context: dict[str, Any],
    *,
    polluted: bool = False,
) -> Outcome:
    started = datetime.now(UTC)
    backend = get_backend(combo.backend)
    # The reference outputs come before the memory baseline: they are not this model's.
    reference = references.outputs(workload, combo.batch_size) if suite.check_outputs else None
    memory = LoadMemory(options.memory_poll_interval_s, polluted=polluted)
    if options.track_memory:
        memory.start()
    try:
        prepared = backend.prepare(workload, combo.device, combo.batch_size, workdir)
    except BaseException:
        memory.abandon()
        raise
    try:
        check = None
        if reference is not None:
            check = check_outputs(
                reference,
                prepared.predict(workload.inputs(combo.batch_size)),
                task=workload.task,
                min_top1_agreement=1.0 if workload.task == "classification" else None,
                min_cosine_similarity=0.999 if workload.task == "embedding" else None,
            )
        memory.pause()
        measurement = measure(prepared.bench_call, device=prepared.timing_device, options=options)
        if options.track_memory:
            measurement = measurement.model_copy(
                update={
                    # A re-measured result may pool attempts from fresh processes,
                    # whose host peak is theirs: only a single in-process attempt's counts.
                    "memory": memory.finish(
                        measurement.memory,
                        same_process=not measurement.isolated and measurement.attempts == 1,
                    )
                }
            )
        accuracy = evaluate(prepared, workload) if suite.accuracy and workload.dataset else None
        model_size = prepared.model_size_bytes
        info = dict(prepared.info)
    finally:
        memory.abandon()
        prepared.close()
    latency = measurement.latency.stats.median
    result = BenchmarkResult(
        benchmark=combo.name,
        workload=combo.workload,
        backend=combo.backend,
        device=combo.device,
        batch_size=combo.batch_size,
        measurement=measurement,
        throughput_items_per_s=combo.batch_size / latency if latency > 0 else None,
        accuracy=accuracy,
        output_check=_output_check(check) if check is not None else None,
        model_size_bytes=model_size,
        backend_info=info,
        hardware=context["hardware"],
        git=context["git"],
        started_at=started,
        finished_at=datetime.now(UTC),
        tags={"suite": suite.name, **suite.tags, **workload.tags},
        params={"measure": options.model_dump(mode="json"), "timing_device": measurement.device},
    )
    if check is not None and not check.passed:
        return Outcome(combo, "mismatch", result, "; ".join(check.failures))
    return Outcome(combo, "ok", result)


def _run_isolated_child(suite_json: str, combo: Combination, context: dict[str, Any]) -> str:
    """Entry point of a spawned child: one combination, the result back as JSON."""
    suite = Suite.model_validate_json(suite_json)
    workload = get_workload(combo.workload)
    options = suite.measure.to_options()
    workdir = Path(tempfile.mkdtemp(prefix="as-bench-"))
    # The runtime library loads before the memory baseline, as it does in the parent
    # (whose plan() asked every backend for its devices): it is not the model's memory.
    get_backend(combo.backend).devices()
    try:
        outcome = _measure_one(
            combo, workload, suite, options, _References(workdir), workdir, context
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if outcome.result is not None:
        outcome.result = outcome.result.model_copy(
            update={"measurement": outcome.result.measurement.model_copy(update={"isolated": True})}
        )
    return _OutcomeRecord(outcome).to_json()


class _OutcomeRecord:
    """An Outcome as JSON, to come back from an isolated child."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def to_json(self) -> str:
        import json

        result = self.outcome.result
        return json.dumps(
            {
                "status": self.outcome.status,
                "message": self.outcome.message,
                "result": result.model_dump(mode="json") if result is not None else None,
            }
        )

    @staticmethod
    def from_json(text: str, combo: Combination) -> Outcome:
        import json

        data = json.loads(text)
        result = data["result"]
        return Outcome(
            combo,
            data["status"],
            BenchmarkResult.model_validate(result) if result is not None else None,
            data["message"],
        )


def _iter_outcomes(
    suite: Suite, todo: list[Combination], context: dict[str, Any]
) -> Iterator[Outcome]:
    # A workload loads once; one that fails to load fails each of its combinations with
    # the same error, without loading (or training) it again.
    workloads: dict[str, Workload | Exception] = {}
    options = suite.measure.to_options()
    workdir = Path(tempfile.mkdtemp(prefix="as-bench-"))
    references = _References(workdir)
    loaded_here = 0  # combinations that ran in this process: their leftovers colour memory
    try:
        for combo in todo:
            try:
                if suite.measure.isolate:
                    # A fresh process per combination: nothing one backend loaded (threads,
                    # allocator caches, compiled kernels) colours the next measurement.
                    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                        text = pool.submit(
                            _run_isolated_child, suite.model_dump_json(), combo, context
                        ).result()
                    yield _OutcomeRecord.from_json(text, combo)
                    continue
                if combo.workload not in workloads:
                    try:
                        workloads[combo.workload] = get_workload(combo.workload)
                    except Exception as exc:
                        workloads[combo.workload] = exc
                        raise
                workload = workloads[combo.workload]
                if isinstance(workload, Exception):
                    raise workload
                loaded_here += 1
                yield _measure_one(
                    combo,
                    workload,
                    suite,
                    options,
                    references,
                    workdir,
                    context,
                    polluted=loaded_here > 1,
                )
            except AsBenchError as exc:
                logger.warning("%s failed: %s", combo.name, exc)
                yield Outcome(combo, "failed", message=str(exc))
            except Exception as exc:  # an exporter or runtime bug must not end the suite
                logger.warning("%s failed: %s: %s", combo.name, type(exc).__name__, exc)
                yield Outcome(combo, "failed", message=f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_suite(
    suite: Suite,
    *,
    store: ResultStore | None = None,
    on_plan: Callable[[list[Combination], list[Outcome]], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> RunReport:
    """Run every combination of ``suite`` and append the results to the store.

    Args:
        suite: What to run.
        store: Where results go; ``ResultStore(suite.results_dir)`` when ``None``.
        on_plan: Called once with the combinations to run and those skipped.
        on_outcome: Called after each combination (for progress display).

    Returns:
        The outcomes, in order; results of ``ok`` and ``mismatch`` combinations are stored.

    Raises:
        SuiteError: Nothing in the suite can run on this machine.
    """
    from as_bench.probe import probe

    _check_factory_specs(suite)
    store = store if store is not None else ResultStore(suite.results_dir)
    todo, skipped = plan(suite)
    report = RunReport(suite, store, list(skipped))
    if on_plan is not None:
        on_plan(todo, skipped)
    if not todo:
        raise _nothing_to_run(skipped)
    repo: GitInfo | None = git_info(Path.cwd())
    context = {"hardware": probe().model_dump(mode="json"), "git": repo}
    run: dict[str, str] = {}
    for outcome in _iter_outcomes(suite, todo, context):
        if outcome.result is not None:
            if not run:  # numbered on the first result: a run that stores nothing takes none
                number, machine = store.new_run()
                run = {"run": number, "machine": machine}
            outcome.result = outcome.result.model_copy(update=run)
            store.append(outcome.result)
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return report
