"""The engine benchmark: as-bench's ``measure`` against pyperf, pytest-benchmark and torch.

Run from the repository root::

    uv run --group bench-compare python packages/as-bench/benchmarks/harness_accuracy.py \
        [--runs 10] [--quick] [--json out.json] [--gpu-only]

CPU part. Every tool measures the same module-level functions of this file: calibrated
busy-waits of 10 µs, 1 ms and 10 ms (each spins on ``time.perf_counter_ns()`` until its
target has passed since its entry, so the truth is known) and a no-op. Each (run, tool,
workload) is one fresh subprocess; its reported median per call and its wall time (process
start to exit, imports included) are collected. A calibration subprocess per run measures,
with bare ``itertools.repeat`` loops, what a call costs beyond the target (the *entry/exit
cost*, from a busy-wait with a zero target) and the per-call time of the no-op (the
*bare-loop baseline*). Tools run with their default settings; every subprocess gets
``OMP_NUM_THREADS`` (and friends) = 1, and torch ``set_num_threads(1)``.

GPU part (when ``torch.cuda.is_available()``): a 4096x4096 bf16 matmul and a batch-1 MLP,
timed by as-bench on ``"cuda"``, by CUDA events, by sync-then-clock and by a naive clock.

Tables go to stdout, progress to stderr, every raw figure to ``--json``. Nothing here is
hard-coded: each figure and each PASS/MISS comes from this run's measurements.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from pathlib import Path
from time import perf_counter_ns
from typing import Any, NamedTuple

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent

THREADS = 1
THREAD_ENV = {
    name: str(THREADS)
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}

TOOLS = ("as-bench", "pyperf", "pytest-benchmark", "torch.utils.benchmark")
# The module each tool needs in its subprocess (a missing one skips the tool).
TOOL_MODULES = {
    "as-bench": "as_bench",
    "pyperf": "pyperf",
    "pytest-benchmark": "pytest_benchmark",
    "torch.utils.benchmark": "torch",
}
SUBPROCESS_TIMEOUT_S = 1800.0

ACCURACY_GOAL_PCT = 1.0
GPU_GOAL_PCT = 3.0


# --------------------------------------------------------------------------------------
# Workloads: module-level, so that every tool (and pyperf's workers) can import them.
# --------------------------------------------------------------------------------------


def noop() -> None:
    pass


# The busy-waits share one shape; the target is a literal so that no argument passing or
# extra call layer adds to the entry cost. busy_0 (target 0) is that entry/exit cost alone:
# the call, two clock reads, the compare and the return.
def busy_0() -> None:
    end = perf_counter_ns() + 0
    while perf_counter_ns() < end:
        pass


def busy_10us() -> None:
    end = perf_counter_ns() + 10_000
    while perf_counter_ns() < end:
        pass


def busy_1ms() -> None:
    end = perf_counter_ns() + 1_000_000
    while perf_counter_ns() < end:
        pass


def busy_10ms() -> None:
    end = perf_counter_ns() + 10_000_000
    while perf_counter_ns() < end:
        pass


class Workload(NamedTuple):
    fn: Callable[[], None]
    target_s: float | None  # None: no known truth (the no-op)
    label: str


WORKLOADS: dict[str, Workload] = {
    "busy_10us": Workload(busy_10us, 10e-6, "busy-wait 10 µs"),
    "busy_1ms": Workload(busy_1ms, 1e-3, "busy-wait 1 ms"),
    "busy_10ms": Workload(busy_10ms, 10e-3, "busy-wait 10 ms"),
    "noop": Workload(noop, None, "no-op"),
}
BUSY_WAITS = ("busy_10us", "busy_1ms", "busy_10ms")


# --------------------------------------------------------------------------------------
# Workers: each runs in its own fresh subprocess and writes one JSON file.
# --------------------------------------------------------------------------------------


def _bare_loop_ns(fn: Callable[[], object], calls: int, reps: int) -> list[float]:
    """Per-call ns of ``fn`` in a bare ``repeat`` loop (the loop as-bench and timeit use)."""
    out = []
    for _rep in range(reps):
        t0 = perf_counter_ns()
        for _ in repeat(None, calls):
            fn()
        out.append((perf_counter_ns() - t0) / calls)
    return out


def calibrate(reps: int = 5, busy_loop_s: float = 0.05) -> dict[str, Any]:
    """What the script itself measures with bare loops (in a fresh process, per run).

    Returns:
        ``entry_exit_ns``: median per-call time of ``busy_0`` over ``reps`` loops of 1e5
        calls (the cost a busy-wait adds to its target, loop step included);
        ``noop_ns``: likewise for ``noop`` with 1e6 calls (the bare-loop baseline);
        ``clock_read_ns``: one ``perf_counter_ns()`` call, the step of the spin (a
        busy-wait overshoots its target by up to one step); ``busy_direct_s``: each
        busy-wait timed by the bare loop itself (median of ``reps`` loops of about
        ``busy_loop_s``), a reference figure; and every repetition.
    """
    _bare_loop_ns(noop, 10_000, 1)  # warm the loop and the functions up
    _bare_loop_ns(busy_0, 10_000, 1)
    noop_reps = _bare_loop_ns(noop, 1_000_000, reps)
    entry_reps = _bare_loop_ns(busy_0, 100_000, reps)
    clock_reps = _bare_loop_ns(perf_counter_ns, 100_000, reps)
    direct: dict[str, list[float]] = {}
    for name in BUSY_WAITS:
        w = WORKLOADS[name]
        assert w.target_s is not None
        calls = max(1, round(busy_loop_s / w.target_s))
        direct[name] = [ns * 1e-9 for ns in _bare_loop_ns(w.fn, calls, reps)]
    return {
        "entry_exit_ns": statistics.median(entry_reps),
        "noop_ns": statistics.median(noop_reps),
        "clock_read_ns": statistics.median(clock_reps),
        "busy_direct_s": {name: statistics.median(v) for name, v in direct.items()},
        "reps": {
            "entry_exit_ns": entry_reps,
            "noop_ns": noop_reps,
            "clock_read_ns": clock_reps,
            "busy_direct_s": direct,
        },
    }


def _measure_as_bench(fn: Callable[[], None]) -> dict[str, Any]:
    from as_bench.engine import MeasureOptions, measure

    t0 = time.perf_counter()
    m = measure(fn, options=MeasureOptions())
    tool_s = time.perf_counter() - t0
    return {
        "median_s": m.latency.stats.median,
        "tool_seconds": tool_s,
        "details": {
            "inner_loops": m.inner_loops,
            "samples": m.latency.stats.n,
            "ci_low_s": m.latency.stats.ci_low,
            "ci_high_s": m.latency.stats.ci_high,
            "converged": m.converged,
            "stop_reason": m.stop_reason,
            "cold_start_s": m.cold_start_s,
            "warmup_iterations": m.warmup.iterations,
            "warmup_seconds": m.warmup.seconds,
            "warmup_stable": m.warmup.stable,
            "total_seconds": m.total_seconds,
            "threads": m.threads,
            "warnings": m.warnings,
        },
    }


def _measure_torch(fn: Callable[[], None]) -> dict[str, Any]:
    import torch
    from torch.utils.benchmark import Timer

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    m = Timer(stmt="fn()", globals={"fn": fn}, num_threads=THREADS).adaptive_autorange()
    tool_s = time.perf_counter() - t0
    return {
        "median_s": float(m.median),
        "tool_seconds": tool_s,
        "details": {
            "number_per_run": int(m.number_per_run),
            "samples": len(m.times),
            "iqr_s": float(m.iqr),
            "torch": str(torch.__version__),
            "torch_threads": int(torch.get_num_threads()),
        },
    }


def _worker_main(argv: Sequence[str]) -> int:
    """``_worker KIND WORKLOAD RESULT``: KIND is calibrate, as-bench or torch."""
    kind, workload, result_path = argv
    if kind == "calibrate":
        result = calibrate()
    elif kind == "as-bench":
        result = _measure_as_bench(WORKLOADS[workload].fn)
    elif kind == "torch.utils.benchmark":
        result = _measure_torch(WORKLOADS[workload].fn)
    else:
        print(f"unknown worker kind {kind!r}", file=sys.stderr)
        return 2
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


def _pyperf_main(argv: Sequence[str]) -> int:
    """``_pyperf WORKLOAD [pyperf options]``: pyperf's master and, re-run by it, its workers."""
    import pyperf

    name = argv[0]
    runner = pyperf.Runner(program_args=(str(SCRIPT), "_pyperf", name))
    runner.parse_args(list(argv[1:]))
    runner.bench_func(name, WORKLOADS[name].fn)
    return 0


PYTEST_TEMPLATE = """\
import sys

sys.path.insert(0, {bench_dir!r})

import harness_accuracy


def test_{name}(benchmark):
    benchmark(harness_accuracy.{name})
"""


# --------------------------------------------------------------------------------------
# The orchestrator: one subprocess per (run, tool, workload).
# --------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """This environment with the thread variables fixed to :data:`THREADS`."""
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(
    cmd: list[str], cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> tuple[float, str | None]:
    """Run ``cmd``; return its wall time and an error text (``None`` when it succeeded)."""
    env = child_env()
    env.update(extra_env or {})
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, f"timed out after {SUBPROCESS_TIMEOUT_S:g} s"
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        return wall, f"exit code {proc.returncode}: {tail}"
    return wall, None


def run_calibration(workdir: Path, tag: str = "cal") -> dict[str, Any]:
    """The calibration worker in a fresh subprocess; raises if it fails."""
    out = workdir / f"{tag}.json"
    _wall, error = _run([sys.executable, str(SCRIPT), "_worker", "calibrate", "-", str(out)])
    if error is not None:
        raise RuntimeError(f"calibration failed: {error}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _tool_command(
    tool: str, workload: str, out: Path, workdir: Path
) -> tuple[list[str], Path | None, dict[str, str]]:
    """The command line that makes ``tool`` measure ``workload`` and leave its result at ``out``."""
    py = sys.executable
    if tool in ("as-bench", "torch.utils.benchmark"):
        return [py, str(SCRIPT), "_worker", tool, workload, str(out)], None, {}
    if tool == "pyperf":
        # Defaults (20 worker processes x 3 values, 1 warm-up, loops calibrated to 100 ms
        # per value); --inherit-environ only hands the thread variables to its workers,
        # which otherwise get a minimal environment.
        cmd = [py, str(SCRIPT), "_pyperf", workload, "--quiet", "-o", str(out)]
        cmd += ["--inherit-environ", ",".join(THREAD_ENV)]
        return cmd, None, {}
    if tool == "pytest-benchmark":
        # Its own directory and ini file, so that the repository's pytest configuration
        # (strict markers, warnings as errors) and other plugins do not apply.
        pdir = workdir / f"pytest-{out.stem}"
        pdir.mkdir()
        (pdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        test = pdir / f"test_pb_{workload}.py"
        test.write_text(
            PYTEST_TEMPLATE.format(bench_dir=str(BENCH_DIR), name=workload), encoding="utf-8"
        )
        cmd = [py, "-m", "pytest", "-q", "-c", str(pdir / "pytest.ini"), "--rootdir", str(pdir)]
        cmd += ["-p", "no:cacheprovider", "-p", "pytest_benchmark.plugin"]
        cmd += ["--benchmark-json", str(out), str(test)]
        return cmd, pdir, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    raise ValueError(f"unknown tool {tool!r}")


def _read_pyperf(path: Path) -> dict[str, Any]:
    import pyperf

    bench = pyperf.Benchmark.load(str(path))
    meta = bench.get_metadata()
    return {
        "median_s": float(bench.median()),
        "tool_seconds": float(bench.get_total_duration()),
        "details": {
            "values": bench.get_nvalue(),
            "runs": bench.get_nrun(),
            "loops": meta.get("loops"),
            "pyperf": pyperf.__version__,
        },
    }


def _read_pytest_benchmark(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    bench = data["benchmarks"][0]
    stats = bench["stats"]
    return {
        "median_s": float(stats["median"]),
        "tool_seconds": float(stats["total"]),
        "details": {
            "rounds": stats["rounds"],
            "iterations": stats.get("iterations"),
            "options": bench.get("options"),
            "pytest_benchmark": data.get("version"),
        },
    }


def run_tool(
    tool: str,
    workload: str,
    run_index: int,
    workdir: Path,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Measure ``workload`` with ``tool`` in a fresh subprocess; one record.

    ``extra_args`` go to pyperf's or pytest's command line (the smoke test shortens
    pyperf with them); the comparison itself passes none, so every tool keeps its defaults.
    """
    out = workdir / f"r{run_index}-{tool}-{workload}.json"
    cmd, cwd, extra = _tool_command(tool, workload, out, workdir)
    if tool in ("pyperf", "pytest-benchmark"):
        cmd += list(extra_args)
    wall, error = _run(cmd, cwd=cwd, extra_env=extra)
    record: dict[str, Any] = {
        "tool": tool,
        "workload": workload,
        "run": run_index,
        "wall_s": wall,
        "median_s": None,
        "tool_seconds": None,
        "details": {},
        "error": error,
    }
    if error is None:
        try:
            if tool == "pyperf":
                parsed = _read_pyperf(out)
            elif tool == "pytest-benchmark":
                parsed = _read_pytest_benchmark(out)
            else:
                parsed = json.loads(out.read_text(encoding="utf-8"))
            record.update(parsed)
        except (OSError, KeyError, IndexError, ValueError) as exc:
            record["error"] = f"could not read the result: {type(exc).__name__}: {exc}"
    return record


def available_tools(wanted: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The tools whose module is importable here, and why the others are skipped."""
    ok, skipped = [], {}
    for tool in wanted:
        module = TOOL_MODULES[tool]
        if importlib.util.find_spec(module) is None:
            skipped[tool] = f"{module} is not installed (uv run --group bench-compare ...)"
        else:
            ok.append(tool)
    return ok, skipped


def _rotate(items: Sequence[str], k: int) -> list[str]:
    """``items`` rotated by ``k``, so that no tool always runs first or last in a run."""
    if not items:
        return []
    k %= len(items)
    return [*items[k:], *items[:k]]


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_cpu(
    runs: int, workloads: Sequence[str], tools: Sequence[str], workdir: Path
) -> dict[str, Any]:
    """Every run: a calibration, then each workload with each tool (order rotated)."""
    calibrations: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for r in range(runs):
        cal = run_calibration(workdir, tag=f"cal-{r}")
        calibrations.append(cal)
        _progress(
            f"[run {r + 1}/{runs}] calibration: entry/exit {cal['entry_exit_ns']:.1f} ns, "
            f"no-op bare loop {cal['noop_ns']:.1f} ns, clock read {cal['clock_read_ns']:.1f} ns"
        )
        for workload in workloads:
            for tool in _rotate(tools, r):
                rec = run_tool(tool, workload, r, workdir)
                records.append(rec)
                if rec["error"] is None:
                    got, wall = format_time(rec["median_s"]), rec["wall_s"]
                    _progress(
                        f"[run {r + 1}/{runs}] {tool:<21} {workload:<9} {got:>12} in {wall:.1f} s"
                    )
                else:
                    _progress(f"[run {r + 1}/{runs}] {tool} {workload} FAILED: {rec['error']}")
    return {"calibrations": calibrations, "records": records}


# --------------------------------------------------------------------------------------
# Summaries: pure functions of the records (tested without running anything).
# --------------------------------------------------------------------------------------


def cv_pct(values: Sequence[float]) -> float | None:
    """Coefficient of variation in percent (sample stdev / mean); ``None`` under 2 values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean * 100.0 if mean > 0 else None


def _median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def truths(
    calibrations: Sequence[dict[str, Any]], workloads: Iterable[str]
) -> dict[str, dict[str, float]]:
    """Truth per busy-wait: the target plus the median entry/exit cost over the runs."""
    entry_s = statistics.median(c["entry_exit_ns"] for c in calibrations) * 1e-9
    step_s = statistics.median(c["clock_read_ns"] for c in calibrations) * 1e-9
    out = {}
    for name in workloads:
        target = WORKLOADS[name].target_s
        if target is not None:
            out[name] = {
                "target_s": target,
                "truth_s": target + entry_s,
                "entry_exit_s": entry_s,
                "step_s": step_s,
            }
    return out


def _err_pct(value: float | None, ref: float | None) -> float | None:
    if value is None or ref is None or ref <= 0:
        return None
    return (value / ref - 1.0) * 100.0


def summarize_tool(
    records: Sequence[dict[str, Any]], tool: str, workload: str, truth: dict[str, float] | None
) -> dict[str, Any]:
    """One (tool, workload) cell: median of the per-run medians, error, CV, wall."""
    mine = [r for r in records if r["tool"] == tool and r["workload"] == workload]
    ok = [r for r in mine if r["error"] is None and r["median_s"] is not None]
    medians = [float(r["median_s"]) for r in ok]
    walls = [float(r["wall_s"]) for r in ok]
    med = _median_or_none(medians)
    err = _err_pct(med, truth["truth_s"]) if truth else None
    return {
        "tool": tool,
        "workload": workload,
        "runs_ok": len(ok),
        "runs_failed": len(mine) - len(ok),
        "median_s": med,
        "err_truth_pct": err,
        "err_target_pct": _err_pct(med, truth["target_s"]) if truth else None,
        "cv_pct": cv_pct(medians),
        "wall_mean_s": statistics.fmean(walls) if walls else None,
        "wall_total_s": sum(walls),
        "accuracy_pass": None if err is None else abs(err) <= ACCURACY_GOAL_PCT,
    }


def summarize_bare_loop(
    calibrations: Sequence[dict[str, Any]], workload: str, truth: dict[str, float]
) -> dict[str, Any]:
    """The script's own bare loop on a busy-wait, as a reference row."""
    values = [float(c["busy_direct_s"][workload]) for c in calibrations]
    med = _median_or_none(values)
    err = _err_pct(med, truth["truth_s"])
    return {
        "tool": "bare loop (reference)",
        "workload": workload,
        "runs_ok": len(values),
        "runs_failed": 0,
        "median_s": med,
        "err_truth_pct": err,
        "err_target_pct": _err_pct(med, truth["target_s"]),
        "cv_pct": cv_pct(values),
        "wall_mean_s": None,
        "wall_total_s": None,
        "accuracy_pass": None if err is None else abs(err) <= ACCURACY_GOAL_PCT,
    }


def summarize_overhead(
    records: Sequence[dict[str, Any]], calibrations: Sequence[dict[str, Any]], tools: Sequence[str]
) -> dict[str, Any]:
    """Table 2: per-call time of the no-op per tool against the bare loop."""
    base_values = [float(c["noop_ns"]) * 1e-9 for c in calibrations]
    base = _median_or_none(base_values)
    rows = []
    for tool in tools:
        cell = summarize_tool(records, tool, "noop", None)
        med = cell["median_s"]
        rows.append(
            {
                "tool": tool,
                "per_call_s": med,
                "overhead_s": None if med is None or base is None else med - base,
                "ratio": None if med is None or not base else med / base,
                "cv_pct": cell["cv_pct"],
                "runs_ok": cell["runs_ok"],
            }
        )
    return {"bare_loop_s": base, "bare_loop_cv_pct": cv_pct(base_values), "rows": rows}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def compare_to_pyperf(
    cells: dict[tuple[str, str], dict[str, Any]], workloads: Sequence[str]
) -> dict[str, Any]:
    """Table 3: as-bench's spread and wall time as ratios to pyperf's, with the verdicts.

    Goal: spread (CV of the per-run medians) no worse than pyperf's (ratio <= 1) in less
    wall time (ratio < 1). A verdict is ``None`` where a figure is missing.
    """
    rows = []
    for w in workloads:
        a, p = cells.get(("as-bench", w)), cells.get(("pyperf", w))
        if a is None or p is None:
            continue
        a_cv, p_cv = a["cv_pct"], p["cv_pct"]
        spread_ok = None if a_cv is None or p_cv is None else a_cv <= p_cv
        cv_r = _ratio(a_cv, p_cv)
        if cv_r is None and spread_ok is not None:  # pyperf's medians did not vary at all
            cv_r = 1.0 if a_cv == 0 else math.inf
        wall_r = _ratio(a["wall_mean_s"], p["wall_mean_s"])
        rows.append(
            {
                "workload": w,
                "as_bench_cv_pct": a["cv_pct"],
                "pyperf_cv_pct": p["cv_pct"],
                "cv_ratio": cv_r,
                "spread_pass": spread_ok,
                "as_bench_wall_s": a["wall_mean_s"],
                "pyperf_wall_s": p["wall_mean_s"],
                "wall_ratio": wall_r,
                "time_pass": None if wall_r is None else wall_r < 1.0,
            }
        )
    return {"rows": rows}


def summarize_cpu(
    cpu: dict[str, Any], workloads: Sequence[str], tools: Sequence[str]
) -> dict[str, Any]:
    """Tables 1 to 3 as data."""
    records, calibrations = cpu["records"], cpu["calibrations"]
    busy = [w for w in workloads if w in BUSY_WAITS]
    truth = truths(calibrations, busy)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    accuracy = []
    for w in busy:
        for tool in tools:
            cells[tool, w] = summarize_tool(records, tool, w, truth[w])
            accuracy.append(cells[tool, w])
        accuracy.append(summarize_bare_loop(calibrations, w, truth[w]))
    overhead = None
    if "noop" in workloads:
        overhead = summarize_overhead(records, calibrations, tools)
        for tool in tools:
            cells[tool, "noop"] = summarize_tool(records, tool, "noop", None)
    return {
        "truth": truth,
        "accuracy": accuracy,
        "overhead": overhead,
        "versus_pyperf": compare_to_pyperf(cells, list(workloads)),
        "wall_per_tool_s": {t: sum(r["wall_s"] for r in records if r["tool"] == t) for t in tools},
    }


# --------------------------------------------------------------------------------------
# Plain-text tables.
# --------------------------------------------------------------------------------------


def format_time(seconds: float | None) -> str:
    """``10.0123 µs``, ``1.00012 ms``: six significant figures, so 0.01% shows."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.6g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"


def _pct(value: float | None, signed: bool = True, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}%" if signed else f"{value:.{digits}f}%"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def format_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1
) -> str:
    """A plain-text table; the first ``left`` columns are left-aligned, the rest right."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(headers))
    return "\n".join([title, rule, line(headers), rule, *(line(r) for r in rows), rule])


def render_cpu(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """Tables 1 to 3 as text."""
    out = []
    t1 = [
        [
            WORKLOADS[c["workload"]].label,
            c["tool"],
            format_time(summary["truth"][c["workload"]]["truth_s"]),
            format_time(c["median_s"]),
            _pct(c["err_truth_pct"]),
            _pct(c["err_target_pct"]),
            _pct(c["cv_pct"], signed=False),
            _num(c["wall_mean_s"], ".2f"),
            f"{c['runs_ok']}" + (f" ({c['runs_failed']} failed)" if c["runs_failed"] else ""),
            verdict(c["accuracy_pass"]),
        ]
        for c in summary["accuracy"]
    ]
    headers = ["workload", "tool", "truth", "median of medians", "err vs truth", "err vs target"]
    headers += ["CV of medians", "wall/run s", "runs", f"|err|<={ACCURACY_GOAL_PCT:g}%"]
    out.append(
        format_table(
            f"Table 1. Accuracy on calibrated busy-waits ({meta['runs']} process runs per tool)",
            headers,
            t1,
            left=2,
        )
    )
    any_truth = next(iter(summary["truth"].values()), None)
    if any_truth is not None:
        out.append(
            "truth = target + entry/exit cost of a busy-wait call "
            f"({any_truth['entry_exit_s'] * 1e9:.1f} ns: busy_0, 1e5 calls in a bare loop, "
            "median over runs);\na busy-wait also overshoots its target by up to one clock "
            f"read ({any_truth['step_s'] * 1e9:.1f} ns), so the truth is known to about half "
            "of that.\nGoal (as-bench): |err vs truth| <= 1%. The bare-loop row is the "
            "script's own tight loop, for reference."
        )
    ov = summary["overhead"]
    if ov is None:
        out.append("\nTable 2 (no-op overhead) skipped: the no-op was not measured (--quick).")
    else:
        t2 = [
            [
                r["tool"],
                format_time(r["per_call_s"]),
                format_time(r["overhead_s"]),
                _num(r["ratio"], ".3f"),
                _pct(r["cv_pct"], signed=False, digits=2),
                str(r["runs_ok"]),
            ]
            for r in ov["rows"]
        ]
        t2.append(
            [
                "bare loop (script, 1e6 calls)",
                format_time(ov["bare_loop_s"]),
                "0",
                "1.000",
                _pct(ov["bare_loop_cv_pct"], signed=False, digits=2),
                str(meta["runs"]),
            ]
        )
        headers = [
            "tool",
            "reported per call",
            "minus bare loop",
            "ratio to bare loop",
            "CV of medians",
            "runs",
        ]
        out.append(
            "\n"
            + format_table(
                "Table 2. Harness overhead per call on a no-op (`def noop(): pass`)", headers, t2
            )
        )
    t3 = [
        [
            WORKLOADS[r["workload"]].label,
            _pct(r["as_bench_cv_pct"], signed=False),
            _pct(r["pyperf_cv_pct"], signed=False),
            _num(r["cv_ratio"], ".2f"),
            verdict(r["spread_pass"]),
            _num(r["as_bench_wall_s"], ".2f"),
            _num(r["pyperf_wall_s"], ".2f"),
            _num(r["wall_ratio"], ".3f"),
            verdict(r["time_pass"]),
        ]
        for r in summary["versus_pyperf"]["rows"]
    ]
    if t3:
        headers = ["workload", "as-bench CV", "pyperf CV", "CV ratio", "spread <= pyperf"]
        headers += ["as-bench wall s", "pyperf wall s", "wall ratio", "faster"]
        out.append(
            "\n"
            + format_table(
                "Table 3. as-bench against pyperf: run-to-run spread and wall time per run",
                headers,
                t3,
            )
        )
        out.append(
            "Goal: spread no worse than pyperf's (CV ratio <= 1) in less time (wall ratio < 1)."
        )
    else:
        out.append("\nTable 3 skipped: it needs both as-bench and pyperf.")
    walls = ", ".join(f"{t} {s:.0f} s" for t, s in summary["wall_per_tool_s"].items())
    out.append(f"\nWall time spent per tool over all runs and workloads: {walls}.")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# GPU: as-bench against CUDA events, sync-then-clock and a naive clock.
# --------------------------------------------------------------------------------------


def _gpu_events(torch: Any, fn: Callable[[], object], iters: int) -> list[float]:
    """A pair of events per call, one synchronize at the end; seconds per call."""
    pairs = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(iters)
    ]
    torch.cuda.synchronize()
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1e-3 for start, end in pairs]


def _gpu_sync_clock(torch: Any, fn: Callable[[], object], iters: int) -> list[float]:
    """synchronize, clock, one call, synchronize, clock; seconds per call."""
    sync, clock = torch.cuda.synchronize, perf_counter_ns
    out = [0.0] * iters
    for i in range(iters):
        sync()
        t0 = clock()
        fn()
        sync()
        out[i] = (clock() - t0) * 1e-9
    return out


def _gpu_naive(torch: Any, fn: Callable[[], object], iters: int) -> list[float]:
    """clock, one call, clock, no synchronisation: the launch time, not the work."""
    clock = perf_counter_ns
    out = [0.0] * iters
    torch.cuda.synchronize()
    for i in range(iters):
        t0 = clock()
        fn()
        out[i] = (clock() - t0) * 1e-9
    torch.cuda.synchronize()
    return out


def _gpu_raw_pass(torch: Any, fn: Callable[[], object], iters: int) -> dict[str, list[float]]:
    return {
        "events": _gpu_events(torch, fn, iters),
        "sync_clock": _gpu_sync_clock(torch, fn, iters),
        "naive": _gpu_naive(torch, fn, iters),
    }


def _gpu_as_bench(fn: Callable[[], object], **options: Any) -> dict[str, Any]:
    from as_bench.engine import MeasureOptions, measure

    t0 = time.perf_counter()
    m = measure(fn, device="cuda", options=MeasureOptions(**options))
    return {
        "device_time_s": m.device_time.stats.median if m.device_time is not None else None,
        "latency_s": m.latency.stats.median,
        "inner_loops": m.inner_loops,
        "converged": m.converged,
        "samples": m.latency.stats.n,
        "seconds": time.perf_counter() - t0,
        "warnings": m.warnings,
    }


def gpu_compare(torch: Any, fn: Callable[[], object], iters: int) -> dict[str, Any]:
    """Raw timers before and after as-bench (pooled, against drift), as-bench in between."""
    for _ in range(max(20, iters // 10)):
        fn()
    torch.cuda.synchronize()
    before = _gpu_raw_pass(torch, fn, iters)
    ab = _gpu_as_bench(fn)
    ab1 = _gpu_as_bench(fn, inner_loops=1)
    after = _gpu_raw_pass(torch, fn, iters)
    pooled = {k: statistics.median(before[k] + after[k]) for k in before}
    return {
        "iters_per_pass": iters,
        "events_s": pooled["events"],
        "sync_clock_s": pooled["sync_clock"],
        "naive_s": pooled["naive"],
        "passes": {
            "before": {k: statistics.median(v) for k, v in before.items()},
            "after": {k: statistics.median(v) for k, v in after.items()},
        },
        "as_bench": ab,
        "as_bench_inner_loops_1": ab1,
        "device_ratio": _ratio(ab["device_time_s"], pooled["events"]),
        "latency_ratio": _ratio(ab["latency_s"], pooled["sync_clock"]),
        "latency_ratio_inner_loops_1": _ratio(ab1["latency_s"], pooled["sync_clock"]),
        "naive_ratio": _ratio(pooled["naive"], pooled["sync_clock"]),
    }


def _gpu_workloads(torch: Any) -> dict[str, tuple[str, Callable[[], object], int]]:
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16, generator=gen)

    def matmul() -> object:
        return a @ b

    torch.manual_seed(0)
    layers = [
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
    ]
    model = torch.nn.Sequential(*layers).to(dev).eval().requires_grad_(False)
    x = torch.randn(1, 1024, device=dev, generator=gen)

    def mlp() -> object:
        return model(x)

    return {
        "matmul": ("bf16 matmul 4096x4096 (compute-bound)", matmul, 400),
        "mlp": ("MLP 3x Linear(1024) fp32, batch 1 (launch-bound)", mlp, 3000),
    }


def run_gpu() -> dict[str, Any]:
    """The GPU section, or why it was skipped."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device is visible (torch.cuda.is_available() is False)"}
    torch.set_num_threads(THREADS)
    info = {
        "device": torch.cuda.get_device_name(0),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
    }
    results = {}
    for key, (label, fn, iters) in _gpu_workloads(torch).items():
        _progress(f"[gpu] {label}")
        res = gpu_compare(torch, fn, iters)
        res["label"] = label
        results[key] = res
    return {"info": info, "workloads": results}


def _within(ratio: float | None, goal_pct: float) -> bool | None:
    return None if ratio is None else abs(ratio - 1.0) * 100.0 <= goal_pct


def render_gpu(gpu: dict[str, Any]) -> str:
    """Tables 4 and 5 as text, or the line saying why they were skipped."""
    if "skipped" in gpu:
        return f"GPU section skipped: {gpu['skipped']}."
    ws = gpu["workloads"]
    keys = list(ws)
    methods = [
        ("as-bench device_time (median)", lambda r: r["as_bench"]["device_time_s"]),
        ("as-bench latency (median)", lambda r: r["as_bench"]["latency_s"]),
        ("as-bench latency, inner_loops=1", lambda r: r["as_bench_inner_loops_1"]["latency_s"]),
        ("CUDA events, a pair per call", lambda r: r["events_s"]),
        ("sync-then-clock per call", lambda r: r["sync_clock_s"]),
        ("naive clock, no sync", lambda r: r["naive_s"]),
    ]
    rows = [[name, *(format_time(get(ws[k])) for k in keys)] for name, get in methods]
    rows.append(["as-bench inner loops", *(str(ws[k]["as_bench"]["inner_loops"]) for k in keys)])
    info = gpu["info"]
    title = (
        f"Table 4. GPU, seconds per call ({info['device']}, torch {info['torch']}, "
        f"CUDA {info['cuda']})"
    )
    out = [format_table(title, ["method", *(ws[k]["label"] for k in keys)], rows)]
    goal_rows = []
    for k in keys:
        r = ws[k]
        checks = [
            ("device_time / CUDA events", r["device_ratio"]),
            ("latency / sync-then-clock", r["latency_ratio"]),
            ("latency (inner_loops=1) / sync-then-clock", r["latency_ratio_inner_loops_1"]),
            ("naive clock / sync-then-clock", r["naive_ratio"]),
        ]
        for i, (name, ratio) in enumerate(checks):
            judged = i < 2  # the goals are on as-bench's defaults; the rest are context
            goal_rows.append(
                [
                    k,
                    name,
                    _num(ratio, ".4f"),
                    f"±{GPU_GOAL_PCT:g}%" if judged else "-",
                    verdict(_within(ratio, GPU_GOAL_PCT)) if judged else "-",
                ]
            )
    out.append(
        "\n"
        + format_table(
            "Table 5. GPU goals (as-bench defaults; raw timers pooled from the passes "
            "before and after it)",
            ["workload", "ratio", "value", "goal", "verdict"],
            goal_rows,
            left=2,
        )
    )
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def _versions(tools: Sequence[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    dists = {
        "as-bench": "as-bench",
        "pyperf": "pyperf",
        "pytest-benchmark": "pytest-benchmark",
        "torch.utils.benchmark": "torch",
    }
    out: dict[str, str | None] = {}
    for tool in tools:
        try:
            out[tool] = version(dists[tool])
        except PackageNotFoundError:
            out[tool] = None
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Compare as-bench's engine with pyperf, pytest-benchmark and torch.utils.benchmark."
        )
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="process runs per tool and workload (default 10; 3 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke check: 3 runs, the 1 ms busy-wait only"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write every raw figure to this JSON file"
    )
    parser.add_argument("--gpu-only", action="store_true", help="run the GPU section alone")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)}"
    )
    args = parser.parse_args(list(argv))
    if args.runs is None:
        args.runs = 3 if args.quick else 10
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; choose from {list(TOOLS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        return _worker_main(argv[1:])
    if argv and argv[0] == "_pyperf":
        return _pyperf_main(argv[1:])
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "meta": {
            "command": [Path(sys.executable).name, *sys.argv],
            "python": sys.version,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": THREADS,
            "thread_env": THREAD_ENV,
            "load_average_start": _load_average(),
            "runs": args.runs,
        }
    }
    if not args.gpu_only:
        tools, skipped = available_tools(args.tools)
        for tool, why in skipped.items():
            _progress(f"skipping {tool}: {why}")
        workloads = ["busy_1ms"] if args.quick else [*BUSY_WAITS, "noop"]
        report["meta"].update(
            {
                "tools": tools,
                "skipped_tools": skipped,
                "workloads": workloads,
                "versions": _versions(tools),
            }
        )
        with tempfile.TemporaryDirectory(prefix="harness-accuracy-") as tmp:
            cpu = run_cpu(args.runs, workloads, tools, Path(tmp))
        report["cpu"] = cpu
        report["summary"] = summarize_cpu(cpu, workloads, tools)
        print(render_cpu(report["summary"], report["meta"]))
        print()
    report["gpu"] = run_gpu()
    print(render_gpu(report["gpu"]))
    report["meta"]["load_average_end"] = _load_average()
    report["meta"]["wall_s"] = time.perf_counter() - started
    versions = ", ".join(f"{t} {v}" for t, v in report["meta"].get("versions", {}).items())
    meta = report["meta"]
    print(
        f"\n{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, threads={THREADS}; "
        f"{versions or 'GPU only'}; load average {meta['load_average_start']} -> "
        f"{meta['load_average_end']}; total wall time {meta['wall_s']:.0f} s."
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        _progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
