"""Interleaved A/B measurement: this checkout's code and a base checkout's, in alternation.

A regression gate that compares today's run with a baseline stored yesterday compares two
machines as much as two versions of the code: a shared VM's speed drifts by more than the
5-10% a gate looks for between sessions minutes apart (on the 2-core VM this was written
on, six one-second runs of the same 1 ms loop, two seconds apart, had medians from 690 to
833 µs). Where both versions of the code are at hand, they can be measured in the same
minutes instead, in alternation, so that a drift slows both alike; pyperf's
``--compare-to`` does this with two interpreters.

:func:`measure_interleaved` runs *pairs* of fresh spawned worker processes, one pair after
the other (at least ``pairs``, 3 by default). In each pair:

- **new** imports the function from this process's ``sys.path``;
- **base** imports it from this ``sys.path`` with every entry inside the new checkout
  replaced by its counterpart in the base checkout (:func:`base_sys_path`): the same
  module and qualified name, the base version's code.

Both workers are pinned to the same CPU (where the OS lets a process choose), so the
comparison never sets one core against another. Each takes its cold call, warm-up and
calibration, one after the other, then samples in *slices* of ``slice_s`` seconds when
told to, one worker sampling while the other waits on its pipe, in cycles of four
slices: A B B A, then B A A B, and so on (an even number of cycles per pair), so that a
drift over a cycle weighs on both alike and neither side is always first. The pairs
alternate which worker starts first too. Measured while writing this on identical code:
with one order only, the side in the middle of each cycle read about 3% slower, and one
pair's two processes differed by up to 5% (a process's memory layout), which is why
there are several pairs.

Each worker builds its :class:`~as_bench.measurement.Measurement` from all its slices;
each side's measurements are pooled over the pairs. After the first ``pairs`` pairs, more
are taken while either side's pooled median CI is above ``target_rel_ci`` and each side
has sampled less than ``max_time_s``.

The workers' own modules (as-bench and what it imports) come from this environment; only
the measured function, and the modules it imports, come from each checkout. A function
the base checkout cannot import raises :class:`BaseSourceError`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from as_bench.devices import Device, get_device
from as_bench.engine._isolate import (
    _ENV_LOCK,
    _exit_text,
    child_result,
)
from as_bench.engine._measure import InProcessRun, describe_callable
from as_bench.engine._remeasure import pool
from as_bench.engine._sampling import SamplingOutcome, _Rounds
from as_bench.engine._threads import child_thread_env, torch_threads
from as_bench.engine.options import MeasureOptions
from as_bench.exceptions import DeviceUnavailableError, MeasurementError
from as_bench.measurement import Measurement
from as_bench.stats import summarize

__all__ = [
    "DEFAULT_PAIRS",
    "BaseSourceError",
    "InterleavedPair",
    "base_sys_path",
    "measure_interleaved",
    "slice_seconds",
]

#: The order of a cycle's slices, and of the next cycle's: over two cycles each side is
#: first, middle and last alike (with one order only, the side in the middle measured 3%
#: slower on identical code).
_ORDERS = (("new", "base", "base", "new"), ("base", "new", "new", "base"))

#: Pairs of worker processes an interleaved measurement takes at least.
DEFAULT_PAIRS = 3
_JOIN_S = 30.0


class BaseSourceError(MeasurementError):
    """The base checkout could not provide the function (a new benchmark, say)."""


@dataclass(frozen=True)
class InterleavedPair:
    """The two measurements of one interleaved A/B run.

    Attributes:
        new: The function as this process imports it.
        base: The function as the base checkout has it.
        cycles: How many A B B A cycles were taken.
    """

    new: Measurement
    base: Measurement
    cycles: int


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def base_sys_path(
    new_root: str | os.PathLike[str],
    base_root: str | os.PathLike[str],
    path: Sequence[str] | None = None,
) -> list[str]:
    """``sys.path`` for the base side: entries inside ``new_root`` moved to ``base_root``.

    An entry inside the running environment (``sys.prefix``: a ``.venv`` inside the
    checkout, with the installed dependencies) stays as it is. An entry inside
    ``new_root`` whose counterpart does not exist in ``base_root`` is dropped: the base
    must not import the new code by accident (its import then fails, and says so).

    Args:
        new_root: The checkout this process runs from.
        base_root: The base checkout.
        path: The entries to map; ``sys.path`` when ``None``.
    """
    new, base = Path(new_root).resolve(), Path(base_root).resolve()
    prefix = Path(sys.prefix).resolve()
    mapped: list[str] = []
    for entry in sys.path if path is None else path:
        # "" is the working directory, which the workers share with this process.
        resolved = Path(entry) if entry else Path.cwd().resolve()
        if not _inside(resolved, new) or _inside(resolved, prefix):
            mapped.append(entry)
            continue
        counterpart = base / resolved.relative_to(new)
        if counterpart.exists():
            mapped.append(str(counterpart))
    return mapped


def slice_seconds(options: MeasureOptions) -> float:
    """How long one slice of samples lasts: a tenth of ``max_time_s``, 0.25 s at most.

    At least ``batch_time_s`` (a round of samples); so a default measurement (1-5 s of
    sampling) alternates every quarter second, a quick one (0.5 s) every 0.05 s.
    """
    return min(0.25, max(options.batch_time_s, options.max_time_s / 10))


# --- the worker ----------------------------------------------------------------------


def _take_for(rounds: _Rounds, seconds: float, options: MeasureOptions, run: InProcessRun) -> None:
    """Sample for about ``seconds``: whole rounds of samples, the last one cut short."""
    end = rounds.clock() + int(seconds * 1e9)
    while True:
        remaining = (end - rounds.clock()) * 1e-9
        if remaining <= 0:
            return
        per = rounds.per_sample_s
        k = max(1, min(options.batch_size, math.floor(options.batch_time_s / per)))
        k = max(1, min(k, math.ceil(remaining / per)))
        if run.setup is not None:
            run.setup()
        rounds.take(k)


def _loaded_from_new(fn: Any, new_root: str) -> str | None:
    """Where the base worker's function came from, when that is the new checkout."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if not file:
        return None
    resolved = Path(file).resolve()
    prefix = Path(sys.prefix).resolve()
    if _inside(resolved, Path(new_root).resolve()) and not _inside(resolved, prefix):
        return str(resolved)
    return None


def _worker_main(
    conn: Connection,
    payload: bytes,
    device_name: str,
    options_json: str,
    base: tuple[list[str], str] | None,
    cpu: int | None = None,
) -> None:
    """Entry point of a worker: load, prepare, sample when told, build the measurement.

    ``base`` is the base side's ``sys.path`` and the new checkout's root; ``None`` on the
    new side.
    """
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})
        if base is not None:
            sys.path[:] = base[0]
        where = "the base checkout" if base is not None else "this checkout"
        try:
            fn, args, kwargs, setup = pickle.loads(payload)
        except Exception as exc:
            conn.send(("load-error", f"{type(exc).__name__}: {exc}", where))
            return
        stray = _loaded_from_new(fn, base[1]) if base is not None and base[1] else None
        if stray is not None:
            conn.send(
                (
                    "load-error",
                    f"{describe_callable(fn)} was imported from the new checkout ({stray}) "
                    "before the base's sys.path was in place: the main script imports it when "
                    'it is imported itself; do that under `if __name__ == "__main__":`',
                    where,
                )
            )
            return
        options = MeasureOptions.model_validate_json(options_json)
        device = get_device(device_name)
        run = InProcessRun(
            fn,
            args,
            kwargs,
            device,
            options,
            setup,
            env_threads_applied=options.threads is not None,
        )
        conn.send(("loaded",))
        conn.recv()  # prepare: one side at a time, so warm-ups do not overlap
        with torch_threads(options.threads) as torch_set:
            cal = run.prepare()
            timing = options.device_timing
            use_events = options.device_time and device.device_series(timing) is not None
            rounds = _Rounds(
                device,
                run.loop,
                cal.inner_loops,
                cal.sample_time_s,
                use_events,
                timing == "per_call",
            )
            conn.send(("ready",))
            command = conn.recv()
            while command[0] == "sample":
                seconds = float(command[1])
                run.guard(lambda: _slice(rounds, seconds, options, run))  # noqa: B023
                stats = rounds.primary_stats(options)
                conn.send(("sampled", rounds.n, stats.ci_halfwidth_relative))
                command = conn.recv()
            _, converged, reason = command
            result = run.finish(rounds.outcome(converged, reason), torch_set)
        conn.send(("ok", child_result(result).model_dump_json()))
    except BaseException as exc:  # everything goes back to the parent
        import traceback

        try:
            conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
        except OSError:  # pragma: no cover - the parent is gone
            pass
    finally:
        conn.close()


def _slice(
    rounds: _Rounds, seconds: float, options: MeasureOptions, run: InProcessRun
) -> SamplingOutcome:
    _take_for(rounds, seconds, options, run)
    return rounds.outcome(False, "slice")


# --- the parent ----------------------------------------------------------------------


class _Worker:
    """One side's worker process and its pipe."""

    def __init__(
        self,
        side: str,
        payload: bytes,
        device: str,
        options: MeasureOptions,
        base: tuple[list[str], str] | None,
        timeout: float | None,
        cpu: int | None,
    ) -> None:
        self.side = side
        self.timeout = timeout
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        child_options = options.model_copy(update={"isolate": False}).model_dump_json()
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, payload, device, child_options, base, cpu),
            name=f"as-bench-interleaved-{side}",
        )
        with _ENV_LOCK, child_thread_env(options.threads):
            self.process.start()
        child.close()
        self.n = 0
        self.ci = math.inf
        self.sampled_s = 0.0

    def answer(self, what: str) -> tuple[Any, ...]:
        if not self.conn.poll(self.timeout):
            self.kill()
            msg = (
                f"the {self.side} worker did not answer within {self.timeout:g} s ({what}); "
                "it was killed"
            )
            raise MeasurementError(msg)
        try:
            got: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(_JOIN_S)
            msg = (
                f"the {self.side} worker {_exit_text(self.process.exitcode)} before "
                f"answering ({what}); its stderr, above, may say why"
            )
            raise MeasurementError(msg) from None
        if got[0] == "load-error":
            msg = f"the {self.side} side could not load the function from {got[2]}: {got[1]}"
            raise BaseSourceError(msg) if self.side == "base" else MeasurementError(msg)
        if got[0] == "error":
            _, type_name, text, child_traceback = got
            if type_name in {"DeviceUnavailableError", "InvalidDeviceSpecError"}:
                raise DeviceUnavailableError(f"in the {self.side} worker: {text}")
            msg = f"in the {self.side} worker: {text}\n\nworker traceback:\n{child_traceback}"
            raise MeasurementError(msg)
        return got

    def sample(self, seconds: float) -> None:
        self.conn.send(("sample", seconds))
        _, self.n, self.ci = self.answer("sampling")
        self.sampled_s += seconds

    def finish(self, converged: bool, reason: str) -> Measurement:
        self.conn.send(("finish", converged, reason))
        got = self.answer("finishing")
        self.process.join(_JOIN_S)
        return Measurement.model_validate_json(got[1])

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_JOIN_S)
        self.conn.close()


def _run_pair(
    payload: bytes,
    device: str,
    options: MeasureOptions,
    base: tuple[list[str], str],
    pair_time_s: float,
    cpu: int | None,
    base_first: bool,
) -> tuple[Measurement, Measurement, int]:
    """One pair of workers: cycles until each side sampled ``pair_time_s``.

    ``base_first`` starts and prepares the base worker first (pairs alternate, so that
    neither side is always the one started second).
    """
    timeout = options.isolate_timeout_s
    sides = ("base", "new") if base_first else ("new", "base")
    paths = {"new": None, "base": base}
    workers = {
        side: _Worker(side, payload, device, options, paths[side], timeout, cpu) for side in sides
    }
    try:
        for worker in workers.values():
            worker.answer("loading the function")
        for worker in workers.values():
            worker.conn.send(("prepare",))
            worker.answer("the cold call, warm-up and calibration")
        slice_s = slice_seconds(options)
        cycles = 0
        while True:
            for side in _ORDERS[(cycles + base_first) % 2]:
                workers[side].sample(slice_s)
            cycles += 1
            if cycles % 2 == 0 and all(
                w.n >= options.min_samples and w.sampled_s >= pair_time_s for w in workers.values()
            ):
                break
        reason = f"{cycles} A B B A cycle(s) of {slice_s:g} s slices"
        new = workers["new"].finish(True, reason)
        base_m = workers["base"].finish(True, reason)
    finally:
        for worker in workers.values():
            worker.kill()
    return new, base_m, cycles


def _cpu() -> int | None:
    """The one CPU both workers of a pair run on: the lowest this process may use."""
    if not hasattr(os, "sched_getaffinity"):
        return None  # pragma: no cover - macOS, Windows: no affinity call
    allowed = os.sched_getaffinity(0)
    return min(allowed) if allowed else None


def _combine(
    side: str, measured: list[Measurement], options: MeasureOptions, cycles: int, converged: bool
) -> Measurement:
    note = (
        f"{side} side of an interleaved A/B measurement: {len(measured)} pair(s) of fresh "
        f"processes, {cycles} A B B A cycle(s) in all, samples pooled"
    )
    pooled = pool(measured, options, note)
    ci = pooled.primary.stats.ci_halfwidth_relative
    reason = (
        f"{'converged' if converged else 'time limit'}: interleaved with the other side in "
        f"{len(measured)} pair(s) of processes, {cycles} A B B A cycle(s); the pooled "
        f"median's {options.ci_level:.0%} CI is ±{ci:.2%} (target ±{options.target_rel_ci:.2%})"
    )
    return pooled.model_copy(update={"converged": converged, "stop_reason": reason})


def measure_interleaved(
    fn: Callable[..., Any],
    *args: Any,
    new_root: str | os.PathLike[str],
    base_root: str | os.PathLike[str],
    device: str | Device = "cpu",
    options: MeasureOptions | None = None,
    setup: Callable[[], Any] | None = None,
    pairs: int = DEFAULT_PAIRS,
    **kwargs: Any,
) -> InterleavedPair:
    """Measure ``fn`` as this checkout has it and as a base checkout has it, interleaved.

    See the module docstring. ``fn``, its arguments and ``setup`` must be picklable (a
    module-level function): each side's worker imports the function by its module and
    qualified name.

    Args:
        fn: The function to time.
        *args: Positional arguments for ``fn``.
        new_root: The checkout this process's code comes from.
        base_root: The base checkout; the base side's ``sys.path`` is
            :func:`base_sys_path` of the two.
        device: A device name (a :class:`~as_bench.devices.Device` is recreated by name in
            each worker, so it must have the default clock).
        options: How to measure (``isolate``, ``remeasure_noisy`` and ``processes`` do not
            apply: both sides are already measured in fresh processes).
        setup: Called untimed before the cold call, warm-up, calibration and each round.
        pairs: Pairs of worker processes, one after the other (at least this many; more,
            up to ``max_time_s``, while a side's pooled CI is above ``target_rel_ci``).
        **kwargs: Keyword arguments for ``fn``.

    Raises:
        BaseSourceError: The base side cannot import the function.
        MeasurementError: Not picklable, a worker raised, crashed or timed out.
        DeviceUnavailableError: The device cannot be used.
    """
    if pairs < 1:
        msg = f"pairs must be at least 1, got {pairs}"
        raise ValueError(msg)
    opts = options if options is not None else MeasureOptions()
    try:
        payload = pickle.dumps((fn, tuple(args), dict(kwargs), setup), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        msg = (
            f"an interleaved A/B measurement imports {describe_callable(fn)} in fresh "
            f"processes, so the function, its arguments and setup must be picklable, and "
            f"they are not ({type(exc).__name__}: {exc}); define it at module level"
        )
        raise MeasurementError(msg) from exc
    chosen = get_device(device)
    if not chosen.has_default_clock:
        msg = (
            f"an interleaved A/B measurement recreates the device from its name "
            f"({chosen.name!r}) in each worker, so {chosen!r}'s own clock cannot go with it"
        )
        raise MeasurementError(msg)
    same = Path(new_root).resolve() == Path(base_root).resolve()  # an A/A check
    base = (base_sys_path(new_root, base_root), "" if same else str(new_root))
    cpu = _cpu() if chosen.name == "cpu" else None
    pair_time_s = max(opts.min_time_s / pairs, slice_seconds(opts))
    news: list[Measurement] = []
    bases: list[Measurement] = []
    cycles = 0
    sampled = 0.0
    converged = False
    while True:
        new, base_m, taken = _run_pair(
            payload, chosen.name, opts, base, pair_time_s, cpu, base_first=len(news) % 2 == 1
        )
        news.append(new)
        bases.append(base_m)
        cycles += taken
        sampled += taken * 2 * slice_seconds(opts)
        if len(news) < pairs:
            continue
        level = opts.ci_level
        cis = [
            summarize([x for m in ms for x in m.primary.samples_s], level).ci_halfwidth_relative
            for ms in (news, bases)
        ]
        if all(ci <= opts.target_rel_ci for ci in cis):
            converged = True
            break
        if sampled >= opts.max_time_s:
            break
    return InterleavedPair(
        new=_combine("new", news, opts, cycles, converged),
        base=_combine("base", bases, opts, cycles, converged),
        cycles=cycles,
    )
