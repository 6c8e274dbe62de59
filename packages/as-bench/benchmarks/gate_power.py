"""The regression gate's power and false-alarm rate, against pytest-benchmark's, on one machine.

A gate is judged by two numbers: how often it fails a real slowdown (power: detected /
tried) and how often it fails unchanged code (false alarms / reruns). This script measures
both for four gates in the same run, on the same functions and the same (optionally
busy) machine:

- **as-bench, pytest plugin**: ``pytest --as-bench-store S --as-bench-compare=S@0001
  --as-bench-fail-on median:5%`` (the plugin's defaults otherwise);
- **as-bench, CLI**: ``as-bench compare S@0001 S@<that session's run> --fail-on
  median:5%`` on the results the plugin session stored;
- **as-bench, interleaved**: ``pytest --as-bench-base-source=../base --as-bench-fail-on
  median:5%``, run in a ``new/`` folder whose test file has the changed functions, with
  ``base/`` holding the unchanged ones: both versions measured in the same session, in
  alternation (no stored baseline);
- **pytest-benchmark**: ``pytest --benchmark-compare=0001
  --benchmark-compare-fail=median:5%`` (its defaults otherwise).

The functions are pure-Python loops of fixed work, calibrated once (before any burner
starts) to about 1 ms and 10 µs; a slowdown of 10% is a loop of 10% more iterations, so
it is real extra work, not a sleep. Each tool first stores a baseline of the unchanged
functions; then each trial slows both functions down (``--slowdowns``, 10% and 20% by
default) and each rerun leaves them unchanged; every session is a fresh ``pytest``
process. A gate "fails" a function when its verdict is a failure or, for as-bench,
inconclusive (which fails CI unless accepted); both are counted and shown.

``--burners N`` starts N processes that spin on the CPU for the whole run (a busy shared
runner: four on a 2-core machine is a load of 4).

Usage, from the repository root::

    uv run --group bench-compare python packages/as-bench/benchmarks/gate_power.py \\
        [--burners 4] [--trials 10] [--reruns 20] [--slowdowns 10,20] [--json out.json]
        [--gates plugin,cli,interleaved,pytest-benchmark]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNCTIONS = ("test_1ms", "test_10us")
TARGETS_S = {"test_1ms": 1e-3, "test_10us": 1e-5}
THRESHOLD = "median:5%"

_WORK = """
import os

SLOWDOWN = float(os.environ.get("GATE_SLOWDOWN", "1"))
N = {{"test_1ms": {n_1ms}, "test_10us": {n_10us}}}


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""

AS_BENCH_TESTS = (
    _WORK
    + """

def test_1ms(as_bench):
    as_bench(work, round(N["test_1ms"] * SLOWDOWN))


def test_10us(as_bench):
    as_bench(work, round(N["test_10us"] * SLOWDOWN))
"""
)

PYTEST_BENCHMARK_TESTS = (
    _WORK
    + """

def test_1ms(benchmark):
    benchmark(work, round(N["test_1ms"] * SLOWDOWN))


def test_10us(benchmark):
    benchmark(work, round(N["test_10us"] * SLOWDOWN))
"""
)


# For the interleaved gate the slowdown is in the code itself, as in a real change: the
# base checkout and the new one each have their own copy of this file.
INTERLEAVED_TESTS = """
SLOWDOWN = {slowdown!r}
N = {{"test_1ms": {n_1ms}, "test_10us": {n_10us}}}


def work(n):
    total = 0
    for i in range(round(n * SLOWDOWN)):
        total += i
    return total


def test_1ms(as_bench):
    as_bench(work, N["test_1ms"])


def test_10us(as_bench):
    as_bench(work, N["test_10us"])
"""


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def calibrate(target_s: float) -> int:
    """Loop iterations that take about ``target_s`` here (best of 5 timings)."""
    n = 1000
    while True:
        best = min(_timed(n) for _ in range(5))
        if best > 2e-3:
            return max(1, round(n * target_s / best))
        n *= 4


def _timed(n: int) -> float:
    start = time.perf_counter()
    _work(n)
    return time.perf_counter() - start


@dataclass
class Tally:
    """Verdicts of one gate: per function, failures and inconclusive ones out of tries."""

    tried: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    inconclusive: dict[str, int] = field(default_factory=dict)

    def add(self, function: str, verdict: str) -> None:
        self.tried[function] = self.tried.get(function, 0) + 1
        if verdict == "failed":
            self.failed[function] = self.failed.get(function, 0) + 1
        elif verdict == "inconclusive":
            self.inconclusive[function] = self.inconclusive.get(function, 0) + 1

    def alarms(self, function: str) -> int:
        return self.failed.get(function, 0) + self.inconclusive.get(function, 0)

    def cell(self, function: str) -> str:
        tried = self.tried.get(function, 0)
        text = f"{self.alarms(function)}/{tried}"
        if self.inconclusive.get(function):
            text += f" ({self.inconclusive[function]} inconclusive)"
        return text


def _pytest(project: Path, test_file: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    argv = [sys.executable, "-m", "pytest", test_file, "-q", "-p", "no:cacheprovider", *args]
    done = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    return done.returncode, done.stdout + done.stderr


class AsBenchGate:
    """The plugin's gate and the CLI's, on the same sessions."""

    name = "as-bench"

    def __init__(self, project: Path, env: dict[str, str], extra: list[str]) -> None:
        self.project = project
        self.env = env
        self.extra = extra
        self.store = project / "as-bench-store"
        (project / "test_asb.py").write_text(AS_BENCH_TESTS.format(**_ns(env)))
        self.plugin = Tally()
        self.cli = Tally()

    def baseline(self) -> None:
        code, out = _pytest(
            self.project,
            "test_asb.py",
            "-p",
            "no:benchmark",
            f"--as-bench-store={self.store}",
            *self.extra,
            env=self.env,
        )
        if code != 0 or "as run 0001" not in out:
            raise SystemExit(f"as-bench baseline session failed ({code}):\n{out}")

    def session(self, slowdown: float) -> tuple[dict[str, str], dict[str, str], str]:
        env = {**self.env, "GATE_SLOWDOWN": str(slowdown)}
        code, out = _pytest(
            self.project,
            "test_asb.py",
            "-p",
            "no:benchmark",
            f"--as-bench-store={self.store}",
            f"--as-bench-compare={self.store}@0001",
            "--as-bench-fail-on",
            THRESHOLD,
            *self.extra,
            env=env,
        )
        plugin = _plugin_verdicts(out, "test_asb.py")
        if code not in (0, 1):
            raise SystemExit(f"the as-bench session ended with {code}:\n{out}")
        run = re.search(r"as run (\d{4,}) ", out)
        if run is None:
            raise SystemExit(f"the session stored no run:\n{out}")
        cli = self._cli(run.group(1))
        return plugin, cli, out

    def _cli(self, run: str) -> dict[str, str]:
        argv = [
            sys.executable,
            "-m",
            "as_bench",
            "compare",
            f"{self.store}@0001",
            f"{self.store}@{run}",
            "--fail-on",
            THRESHOLD,
            "--json",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        if done.returncode not in (0, 1, 3):
            raise SystemExit(f"as-bench compare ended with {done.returncode}:\n{done.stderr}")
        items = json.loads(done.stdout)["items"]
        verdicts = {}
        for item in items:
            function = item["benchmark"].split("::")[-1]
            verdicts[function] = (
                "failed" if item["failed"] else "inconclusive" if item["inconclusive"] else "passed"
            )
        return verdicts


def _plugin_verdicts(out: str, test_file: str) -> dict[str, str]:
    verdicts = {}
    for function in FUNCTIONS:
        row = re.search(rf"^{re.escape(test_file)}::{function} .* (\S+)$", out, flags=re.M)
        if row is None:
            raise SystemExit(f"no verdict for {function} in the plugin's output:\n{out}")
        verdicts[function] = {"FAILED": "failed", "INCONCLUSIVE": "inconclusive"}.get(
            row.group(1), "passed"
        )
    return verdicts


class InterleavedGate:
    """The plugin's gate against a base checkout measured in the same session.

    ``base/`` holds the unchanged functions, ``new/`` the changed ones; each session runs
    ``pytest --as-bench-base-source=../base --as-bench-fail-on median:5%`` in ``new/``.
    """

    name = "as-bench interleaved"

    def __init__(self, project: Path, env: dict[str, str], extra: list[str]) -> None:
        self.env = env
        self.extra = extra
        self.base = project / "base"
        self.new = project / "new"
        for folder in (self.base, self.new):
            folder.mkdir()
            (folder / "pytest.ini").write_text("[pytest]\n")
        self._write(self.base, 1.0)

    def _write(self, folder: Path, slowdown: float) -> None:
        text = INTERLEAVED_TESTS.format(slowdown=slowdown, **_ns(self.env))
        (folder / "test_ab.py").write_text(text)

    def session(self, slowdown: float) -> dict[str, str]:
        self._write(self.new, slowdown)
        code, out = _pytest(
            self.new,
            "test_ab.py",
            "-p",
            "no:benchmark",
            f"--as-bench-base-source={self.base}",
            "--as-bench-fail-on",
            THRESHOLD,
            *self.extra,
            env=self.env,
        )
        if code not in (0, 1):
            raise SystemExit(f"the interleaved session ended with {code}:\n{out}")
        return _plugin_verdicts(out, "test_ab.py")


class PytestBenchmarkGate:
    """pytest-benchmark's --benchmark-compare-fail, with autosaved runs."""

    name = "pytest-benchmark"

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project = project
        self.env = env
        self.storage = project / "pb-storage"
        (project / "test_pb.py").write_text(PYTEST_BENCHMARK_TESTS.format(**_ns(env)))
        self.tally = Tally()

    def _run(self, *args: str, env: dict[str, str]) -> tuple[int, str]:
        return _pytest(
            self.project,
            "test_pb.py",
            "-p",
            "no:as_bench",
            f"--benchmark-storage=file://{self.storage}",
            *args,
            env=env,
        )

    def baseline(self) -> None:
        code, out = self._run("--benchmark-save=baseline", env=self.env)
        if code != 0:
            raise SystemExit(f"pytest-benchmark baseline session failed ({code}):\n{out}")

    def session(self, slowdown: float) -> dict[str, str]:
        env = {**self.env, "GATE_SLOWDOWN": str(slowdown)}
        code, out = self._run(
            "--benchmark-compare=0001", f"--benchmark-compare-fail={THRESHOLD}", env=env
        )
        verdicts = {}
        for function in FUNCTIONS:
            failed = re.search(rf"^\s*{function} \(\S+\) - Field 'median' has failed", out, re.M)
            verdicts[function] = "failed" if failed else "passed"
        if code not in (0, 1):
            raise SystemExit(f"the pytest-benchmark session ended with {code}:\n{out}")
        return verdicts


def _ns(env: dict[str, str]) -> dict[str, str]:
    return {"n_1ms": env["GATE_N_1MS"], "n_10us": env["GATE_N_10US"]}


def _burners(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _session(
    slowdown: float,
    as_bench: AsBenchGate | None,
    interleaved: InterleavedGate | None,
    pytest_benchmark: PytestBenchmarkGate | None,
) -> dict[str, dict[str, str]]:
    """One session of each chosen tool: every gate's verdict per function."""
    verdicts: dict[str, dict[str, str]] = {}
    if as_bench is not None:
        verdicts["plugin"], verdicts["cli"], _ = as_bench.session(slowdown)
    if interleaved is not None:
        verdicts["interleaved"] = interleaved.session(slowdown)
    if pytest_benchmark is not None:
        verdicts["pytest-benchmark"] = pytest_benchmark.session(slowdown)
    return verdicts


def _report(gates: list[str], detected: dict[str, Tally], alarms: dict[str, Tally]) -> str:
    header = ("", *(TITLES[g] for g in gates))
    blank = ("",) * len(gates)
    power = [("power: failed / tried", *blank)]
    for key in sorted(detected[gates[0]].tried):
        power.append((key, *(detected[g].cell(key) for g in gates)))
    false = [("false alarms / reruns", *blank)]
    for key in sorted(alarms[gates[0]].tried):
        false.append((key, *(alarms[g].cell(key) for g in gates)))
    return _table([header, *power, *false])


GATES = ("plugin", "cli", "interleaved", "pytest-benchmark")
TITLES = {
    "plugin": "as-bench plugin",
    "cli": "as-bench compare",
    "interleaved": "as-bench interleaved",
    "pytest-benchmark": "pytest-benchmark",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=0, help="CPU-burning processes")
    parser.add_argument("--trials", type=int, default=10, help="sessions per slowdown")
    parser.add_argument("--reruns", type=int, default=20, help="sessions of unchanged code")
    parser.add_argument("--slowdowns", default="10,20", help="percent, comma-separated")
    parser.add_argument(
        "--gates", default=",".join(GATES), help=f"which gates, comma-separated: {GATES}"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every verdict here")
    parser.add_argument(
        "--plugin-args", default="", help="extra pytest arguments for the as-bench sessions"
    )
    args = parser.parse_args(argv)
    gates = [g for g in args.gates.split(",") if g]
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        parser.error(f"unknown gate(s) {unknown}; known: {GATES}")
    slowdowns = [float(s) / 100 for s in args.slowdowns.split(",") if s]
    n_1ms, n_10us = calibrate(TARGETS_S["test_1ms"]), calibrate(TARGETS_S["test_10us"])
    project = Path(tempfile.mkdtemp(prefix="as-bench-gate-power-"))
    (project / "pytest.ini").write_text("[pytest]\n")
    env = {
        **os.environ,
        "GATE_N_1MS": str(n_1ms),
        "GATE_N_10US": str(n_10us),
        "PYTHONHASHSEED": "0",
        "AS_BENCH_CACHE_DIR": str(project / "cache"),
    }
    extra = args.plugin_args.split()
    stored = "plugin" in gates or "cli" in gates
    as_bench = AsBenchGate(project, env, extra) if stored else None
    interleaved = InterleavedGate(project, env, extra) if "interleaved" in gates else None
    pytest_benchmark = PytestBenchmarkGate(project, env) if "pytest-benchmark" in gates else None
    detected = {key: Tally() for key in gates}
    alarms = {key: Tally() for key in gates}
    records: list[dict[str, Any]] = []
    burners = _burners(args.burners)
    started = time.monotonic()
    try:
        print(
            f"gate power: loops of {n_1ms} and {n_10us} iterations (about 1 ms and 10 µs), "
            f"{args.burners} burner(s) on {os.cpu_count()} CPUs; threshold {THRESHOLD}; "
            f"gates {', '.join(gates)}",
            file=sys.stderr,
        )
        if as_bench is not None:
            as_bench.baseline()
        if pytest_benchmark is not None:
            pytest_benchmark.baseline()
        plan = [(s, "trial") for s in slowdowns for _ in range(args.trials)]
        plan += [(0.0, "rerun")] * args.reruns
        for index, (slowdown, kind) in enumerate(plan, 1):
            verdicts = _session(1.0 + slowdown, as_bench, interleaved, pytest_benchmark)
            tallies = detected if kind == "trial" else alarms
            for function in FUNCTIONS:
                key = f"{function} +{slowdown:.0%}" if kind == "trial" else function
                for gate in gates:
                    tallies[gate].add(key, verdicts[gate].get(function, "passed"))
            records.append({"slowdown": slowdown, "kind": kind, **verdicts})
            shown = ", ".join(f"{gate} {verdicts[gate]}" for gate in gates)
            print(
                f"[{index}/{len(plan)}] {kind} +{slowdown:.0%}: {shown} "
                f"({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
            )
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()
    print(
        f"\nGate verdicts at {THRESHOLD}: {args.burners} CPU burner(s) on {os.cpu_count()} CPUs "
        f"({time.monotonic() - started:.0f} s)\n"
    )
    print(_report(gates, detected, alarms))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"burners": args.burners, "n_1ms": n_1ms, "n_10us": n_10us, "sessions": records},
                indent=2,
            )
        )
    shutil.rmtree(project, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
