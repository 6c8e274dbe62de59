"""The pytest plugin: the ``as_bench`` fixture, the store, the regression gate, xdist, inertness.

Each test runs an inner pytest session with ``pytester`` in a temporary folder (outside the
repository, so the workspace's pytest configuration does not apply to it); the plugin
loads there through its ``pytest11`` entry point, as in a user's project.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from as_bench import pytest_plugin
from as_bench.engine import MeasureOptions
from as_bench.pytest_plugin._options import (
    DISABLE_MESSAGE,
    XDIST_MESSAGE,
    disabled_reason,
    is_xdist_worker,
    xdist_active,
)
from as_bench.pytest_plugin._session import build_options
from as_bench.results import ResultStore, export_results, read_result_objects
from as_bench.testing import lognormal_samples, make_result

pytest_plugins = ["pytester"]

# pytest-benchmark (present where the bench-compare group is synced) reads the CPU's
# details at every session start, a second each time; the inner sessions do without it.
BASE = ["-p", "no:cacheprovider", "-p", "no:benchmark"]
# Short measurements: the inner sessions check the plugin's plumbing, not the engine.
QUICK = ["--as-bench-quick", *BASE]

BUSY = """
import random
import time

import pytest

from as_bench.testing import FakeDevice

CALLS = []


def busy(seconds):
    # Spins on the wall clock: immune to CPU frequency, mostly to preemption.
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


def noop():
    pass


def fake(seconds, seed=0):
    # A device on fake time whose calls cost seconds +-5% (seeded): exact verdicts.
    rng = random.Random(seed)
    return FakeDevice(lambda _: seconds * rng.uniform(0.95, 1.05))
"""


def _module(body: str) -> str:
    return BUSY + textwrap.dedent(body)


def _lines(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


@pytest.fixture(autouse=True)
def _project(pytester: pytest.Pytester) -> None:
    # A project with a pytest config file, as a user's has: its folder is the rootdir, so
    # node ids (the benchmarks' names) stay the same from run to run.
    pytester.makeini("[pytest]\n")


# --------------------------------------------------------------------------------------
# The fixture
# --------------------------------------------------------------------------------------


@pytest.mark.timing
def test_the_fixture_measures_and_the_summary_lists_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_speed=_module(
            """
            def test_busy(as_bench):
                m = as_bench(busy, 2e-4)
                assert m is not None and as_bench.enabled
                assert m.device == "cpu"
                # real time: preemption stretches samples, never shortens one
                assert 0.5 * 2e-4 <= m.latency.stats.min <= 5 * 2e-4
                assert m.latency.stats.median >= 0.5 * 2e-4
                assert as_bench.measurements == [m]
            """
        )
    )
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- as-bench -*",
            "benchmark*device*median*CI of median*converged",
            "test_speed.py::test_busy*cpu*µs*[[]*%, +*%]*",
        ]
    )


def test_several_measurements_are_named_and_stored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_many=_module(
            """
            def test_three(as_bench):
                as_bench(busy, 1e-4)
                as_bench(busy, 1e-4, name="wide", batch_size=8)
                as_bench(busy, 1e-4)

            def test_one(as_bench):
                as_bench(busy, 1e-4)

            def test_not_measured():
                pass
            """
        )
    )
    store = pytester.path / "store"
    result = pytester.runpytest(*QUICK, "--as-bench-store", str(store))
    result.assert_outcomes(passed=3)
    results = {r.benchmark: r for r in read_result_objects(store)}
    assert sorted(results) == [
        "test_many.py::test_one",
        "test_many.py::test_three#1",
        "test_many.py::test_three#2",
        "test_many.py::test_three[wide]",
    ]
    wide = results["test_many.py::test_three[wide]"]
    assert (wide.workload, wide.backend, wide.device, wide.batch_size) == (
        "test_three",
        "python",
        "cpu",
        8,
    )
    assert wide.throughput_items_per_s == pytest.approx(8 / wide.median_s)
    assert results["test_many.py::test_one"].batch_size == 1
    assert wide.tags == {"source": "pytest", "test": "test_many.py::test_three"}
    assert wide.params["function"] == "busy"
    assert wide.hardware["os"]  # the probe ran once and went into every result
    result.stdout.fnmatch_lines([f"as-bench: 4 result(s) appended to {store} as run 0001 (*)"])


def test_relative_store_path_is_taken_from_where_pytest_started(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_rel=_module("def test_a(as_bench):\n    as_bench(busy, 1e-4)\n"))
    result = pytester.runpytest(*QUICK, "--as-bench-store", "results")
    result.assert_outcomes(passed=1)
    assert len(ResultStore(pytester.path / "results")) == 1


def test_setup_runs_before_measuring(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_setup=_module(
            """
            def test_setup_called(as_bench):
                prepared = []
                def work():
                    assert prepared, "setup did not run before the call"
                    busy(1e-4)
                as_bench(work, setup=lambda: prepared.append(1))
                assert len(prepared) >= 2  # before the cold call and each round
            """
        )
    )
    pytester.runpytest(*QUICK).assert_outcomes(passed=1)


def test_arguments_and_keyword_arguments_reach_the_function(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_args=_module(
            """
            def test_args(as_bench):
                seen = set()
                def work(a, b, *, c):
                    seen.add((a, b, c))
                as_bench(work, 1, 2, c=3)
                assert seen == {(1, 2, 3)}
            """
        )
    )
    pytester.runpytest(*QUICK).assert_outcomes(passed=1)


def test_options_come_from_flags_then_marker_then_the_call(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_opts=_module(
            """
            from as_bench import MeasureOptions

            def test_flags(as_bench):
                as_bench(busy, 1e-4)

            @pytest.mark.as_bench(max_time_s=0.05, min_samples=4)
            def test_marker(as_bench):
                as_bench(busy, 1e-4)

            @pytest.mark.as_bench(max_time_s=0.05)
            def test_explicit(as_bench):
                as_bench(busy, 1e-4, options=MeasureOptions.quick(max_time_s=0.07))
            """
        )
    )
    store = pytester.path / "store"
    args = ["--as-bench-max-time", "0.2", "--as-bench-target-ci", "0.03", "--strict-markers"]
    result = pytester.runpytest(*QUICK, *args, "--as-bench-store", str(store))
    result.assert_outcomes(passed=3)
    measured = {r.benchmark.split("::")[1]: r.params["measure"] for r in read_result_objects(store)}
    assert measured["test_flags"]["max_time_s"] == 0.2
    assert measured["test_flags"]["target_rel_ci"] == 0.03
    assert measured["test_flags"]["min_samples"] == MeasureOptions.quick().min_samples
    assert measured["test_marker"]["max_time_s"] == 0.05  # the marker beats the flag
    assert measured["test_marker"]["min_samples"] == 4
    assert measured["test_marker"]["target_rel_ci"] == 0.03  # the flag still applies
    assert measured["test_explicit"]["max_time_s"] == 0.07  # options= replaces them all
    assert measured["test_explicit"]["target_rel_ci"] == 0.05


def test_marker_device_is_the_default_device(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_dev=_module(
            """
            @pytest.mark.as_bench(device="cpu")
            def test_cpu(as_bench):
                assert as_bench(busy, 1e-4).device == "cpu"

            @pytest.mark.as_bench(device="nonsense")
            def test_bad_device(as_bench):
                as_bench(busy, 1e-4)
            """
        )
    )
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(passed=1, failed=1)
    assert "nonsense" in _lines(result)


def test_a_wrong_marker_fails_its_test_with_a_clear_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marker=_module(
            """
            @pytest.mark.as_bench(max_tme_s=1)
            def test_typo(as_bench):
                as_bench(busy, 1e-4)

            @pytest.mark.as_bench(min_time_s=5, max_time_s=1)
            def test_conflict(as_bench):
                as_bench(busy, 1e-4)
            """
        )
    )
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(errors=1, failed=1)
    text = _lines(result)
    assert "test_marker.py::test_typo: @pytest.mark.as_bench: unknown option(s) max_tme_s" in text
    assert "test_marker.py::test_conflict: @pytest.mark.as_bench options are not valid" in text
    assert "max_time_s (1.0) is below min_time_s (5.0)" in text


def test_a_name_used_twice_in_one_test_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_twice=_module(
            """
            def test_twice(as_bench):
                as_bench(busy, 1e-4, name="x")
                with pytest.raises(ValueError, match="name='x'.* already used"):
                    as_bench(busy, 1e-4, name="x")
                with pytest.raises(ValueError, match="batch_size"):
                    as_bench(busy, 1e-4, batch_size=0)
            """
        )
    )
    pytester.runpytest(*QUICK).assert_outcomes(passed=1)


def test_a_function_that_raises_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_raise=_module(
            """
            def test_raises(as_bench):
                def broken():
                    raise KeyError("boom")
                as_bench(broken)
            """
        )
    )
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(failed=1)
    assert "boom" in _lines(result)


def test_build_options_shortens_min_time_with_a_short_max_time() -> None:
    options = build_options(MeasureOptions(), {"max_time_s": 0.3})
    assert (options.max_time_s, options.min_time_s) == (0.3, 0.3)
    both = build_options(MeasureOptions(), {"max_time_s": 0.3, "min_time_s": 0.1})
    assert (both.max_time_s, both.min_time_s) == (0.3, 0.1)
    assert build_options(MeasureOptions(), {"max_time_s": 9}).min_time_s == 1.0


# --------------------------------------------------------------------------------------
# Baseline comparison and the gate
# --------------------------------------------------------------------------------------

# The gated function runs on a FakeDevice (fake time, seeded noise): the gate's verdict
# on a 20% slowdown, or on none, is exact whatever else the machine is doing.
GATED = _module(
    """
    DELAY = {delay!r}
    SEED = {seed!r}

    def test_busy(as_bench):
        as_bench(noop, device=fake(DELAY, SEED))
    """
)


def _gated(delay: float, seed: int = 0) -> str:
    return GATED.format(delay=delay, seed=seed)


def _baseline(pytester: pytest.Pytester, store: Path) -> None:
    pytester.makepyfile(test_gate=_gated(2e-4))
    pytester.runpytest(*QUICK, "--as-bench-store", str(store)).assert_outcomes(passed=1)


def test_a_regression_beyond_fail_on_fails_the_run_naming_it(pytester: pytest.Pytester) -> None:
    store = pytester.path / "baseline"
    _baseline(pytester, store)
    pytester.makepyfile(test_gate=_gated(2.4e-4, seed=1))  # 20% slower
    result = pytester.runpytest(
        *QUICK, "--as-bench-compare", str(store), "--as-bench-fail-on", "median:5%"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"as-bench: 1 benchmark(s) compared with {store}*",
            "test_gate.py::test_busy*+*%*FAILED",
            "as-bench gate FAILED (--as-bench-fail-on median:5%): 1 benchmark(s) regressed:",
            "  test_gate.py::test_busy: median +*% (95% CI * … *) > 5%, p=*",
        ]
    )


def test_an_unchanged_function_passes_the_gate(pytester: pytest.Pytester) -> None:
    store = pytester.path / "baseline"
    _baseline(pytester, store)
    pytester.makepyfile(test_gate=_gated(2e-4, seed=1))  # the same cost, other noise
    result = pytester.runpytest(
        *QUICK, "--as-bench-compare", str(store), "--as-bench-fail-on", "median:5%"
    )
    assert result.ret == pytest.ExitCode.OK, _lines(result)
    result.stdout.fnmatch_lines(
        ["test_gate.py::test_busy*", "as-bench gate passed (--as-bench-fail-on median:5%)"]
    )
    assert "FAILED" not in result.stdout.str()


@pytest.mark.timing
def test_the_gate_catches_a_real_3x_slowdown_end_to_end(pytester: pytest.Pytester) -> None:
    # Real time, real busy-waits, a slowdown far beyond what a busy machine adds. The verdict
    # is "FAILED" on a quiet machine; on a busy one the gate may call the run too noisy to
    # judge (INCONCLUSIVE, which fails the run too), but the comparison still shows the
    # regression.
    real = _module("DELAY = {delay!r}\n\ndef test_busy(as_bench):\n    as_bench(busy, DELAY)\n")
    store = pytester.path / "baseline"
    pytester.makepyfile(test_gate=real.format(delay=2e-4))
    pytester.runpytest(*QUICK, "--as-bench-store", str(store)).assert_outcomes(passed=1)
    pytester.makepyfile(test_gate=real.format(delay=6e-4))
    result = pytester.runpytest(
        *QUICK, "--as-bench-compare", str(store), "--as-bench-fail-on", "median:5%"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), _lines(result)
    assert re.search(
        r"^test_gate\.py::test_busy .* \+\d+\.\d% .*(regression|FAILED|INCONCLUSIVE)$",
        result.stdout.str(),
        flags=re.MULTILINE,
    ), _lines(result)


def test_compare_without_fail_on_reports_but_never_fails(pytester: pytest.Pytester) -> None:
    # A baseline file built, not measured: 200 samples around 200 µs.
    export = pytester.path / "baseline.json"
    baseline = make_result("test_gate.py::test_busy", lognormal_samples(2e-4, sigma=0.02))
    export_results([baseline], export)
    pytester.makepyfile(
        test_gate=_gated(2.4e-4)
        + "\ndef test_new(as_bench):\n    as_bench(noop, device=fake(1e-4))\n"
    )
    result = pytester.runpytest(*QUICK, "--as-bench-compare", str(export))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "test_gate.py::test_busy*regression",
            "not in the baseline (not compared): test_gate.py::test_new",
        ]
    )
    assert "as-bench gate" not in result.stdout.str()


def test_a_partial_run_gates_only_what_it_measured(pytester: pytest.Pytester) -> None:
    store = pytester.path / "baseline"
    pytester.makepyfile(
        test_two=_module(
            """
            def test_a(as_bench):
                as_bench(noop, device=fake(1e-4))

            def test_b(as_bench):
                as_bench(noop, device=fake(1e-4))
            """
        )
    )
    pytester.runpytest(*QUICK, "--as-bench-store", str(store)).assert_outcomes(passed=2)
    result = pytester.runpytest(
        *QUICK, "-k", "test_a", "--as-bench-compare", str(store), "--as-bench-fail-on", "mean:5%"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"as-bench: 1 benchmark(s) compared with {store}*"])
    assert "test_b" not in result.stdout.str()


@pytest.mark.parametrize("gated", [True, False], ids=["fail-on", "compare-only"])
def test_a_baseline_with_no_benchmark_in_common_fails_the_run(
    pytester: pytest.Pytester, gated: bool
) -> None:
    # Nothing compared is nothing checked: a failure, never "passed", naming the path.
    store = pytester.path / "baseline"
    _baseline(pytester, store)
    pytester.makepyfile(test_gate=_gated(2e-4).replace("test_busy", "test_renamed"))
    gate = ["--as-bench-fail-on", "median:5%"] if gated else []
    result = pytester.runpytest(*QUICK, "--as-bench-compare", str(store), *gate)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, _lines(result)
    result.stdout.fnmatch_lines(
        [
            "as-bench: 0 benchmark(s) compared with *",
            "not in the baseline (not compared): test_gate.py::test_renamed",
            f"warning: no benchmark of this session is in the baseline. Names are pytest node "
            f"ids, relative to the rootdir ({pytester.path})*",
            "as-bench FAILED: nothing compared: no benchmark of this session "
            f"(test_gate.py::test_renamed) is in the baseline {store} run 0001 (*); expected "
            "the baseline to hold results of the same benchmarks*",
        ]
    )
    assert "gate passed" not in result.stdout.str()


# A baseline built, not measured (about 200 µs, quiet), and a session on fake time whose
# calls still cost 200 µs but 30% of them waited for a core (2 to 6 times as long): its
# tail is far above the baseline's, its lower decile is not. A p95 threshold cannot be
# judged on such a busy run: the gate must call it inconclusive, whatever the machine does.
NOISY = _module(
    """
    def test_busy(as_bench):
        rng = random.Random(7)

        def call(_):
            body = 2e-4 * rng.lognormvariate(0.0, 0.01)
            return body * rng.uniform(2.0, 6.0) if rng.random() < 0.3 else body

        as_bench(noop, device=FakeDevice(call))
    """
)


def _noisy_session(pytester: pytest.Pytester, *extra: str) -> pytest.RunResult:
    export = pytester.path / "baseline.json"
    quiet = lognormal_samples(2e-4, sigma=0.02)
    export_results([make_result("test_gate.py::test_busy", quiet)], export)
    pytester.makepyfile(test_gate=NOISY)
    return pytester.runpytest(
        *QUICK, "--as-bench-compare", str(export), "--as-bench-fail-on", "p95:10%", *extra
    )


def test_an_inconclusive_gate_fails_the_run_saying_why(pytester: pytest.Pytester) -> None:
    result = _noisy_session(pytester)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, _lines(result)
    result.stdout.fnmatch_lines(
        [
            "test_gate.py::test_busy*INCONCLUSIVE",
            "as-bench gate INCONCLUSIVE (--as-bench-fail-on p95:10%): 1 benchmark(s) "
            "regressed on runs too noisy to judge (accept with --as-bench-allow-inconclusive):",
            "  test_gate.py::test_busy: p95 +*% > 10% (lower decile *, 95% CI * … *), p=*, "
            "but only the tail moved and the tail of a busy run measures the machine; a busy "
            "run (the new run's IQR is *% of its median, over 10%) and the evidence does not "
            "settle it: rerun it, on a quieter machine if you can",
        ]
    )
    assert "gate passed" not in result.stdout.str()


def test_allow_inconclusive_accepts_it_and_still_prints_the_verdict(
    pytester: pytest.Pytester,
) -> None:
    result = _noisy_session(pytester, "--as-bench-allow-inconclusive")
    assert result.ret == pytest.ExitCode.OK, _lines(result)
    result.stdout.fnmatch_lines(
        [
            "as-bench gate INCONCLUSIVE (--as-bench-fail-on p95:10%), accepted by "
            "--as-bench-allow-inconclusive: 1 benchmark(s) regressed on runs too noisy*",
            "  test_gate.py::test_busy: *, over 10%) and the evidence does not settle it: *",
        ]
    )
    assert "gate passed" not in result.stdout.str()


def test_compare_with_nothing_measured_says_so(pytester: pytest.Pytester) -> None:
    store = pytester.path / "baseline"
    _baseline(pytester, store)
    pytester.makepyfile(test_gate="def test_plain():\n    pass\n")
    result = pytester.runpytest(*QUICK, "--as-bench-compare", str(store))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["as-bench: nothing measured in this session to compare with*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--as-bench-compare", "{store}", "--as-bench-fail-on", "median5"],
            "ERROR: as-bench: --as-bench-fail-on 'median5': 'median5' is not a threshold; "
            "write METRIC:N% *",
        ),
        (
            ["--as-bench-compare", "{store}", "--as-bench-fail-on", "p50:5%"],
            "ERROR: as-bench: --as-bench-fail-on 'p50:5%': *unknown metric 'p50'*",
        ),
        (
            ["--as-bench-fail-on", "median:5%"],
            "ERROR: as-bench: --as-bench-fail-on needs a baseline to compare with: "
            "add --as-bench-compare BASELINE*",
        ),
        (
            ["--as-bench-compare", "{missing}"],
            "ERROR: as-bench: --as-bench-compare */missing: no results at */missing: no such "
            "file or folder; expected a baseline: a result store folder written by "
            "--as-bench-store (or `as-bench run`), or a results file*",
        ),
        (
            ["--as-bench-max-time", "0.5", "--as-bench-min-time", "2"],
            "ERROR: as-bench: the --as-bench-* measurement options are not valid together: "
            "*max_time_s (0.5) is below min_time_s (2.0)*",
        ),
    ],
    ids=["syntax", "metric", "no-baseline", "missing-baseline", "options"],
)
def test_bad_options_are_usage_errors_before_any_test_runs(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    store = pytester.path / "baseline"
    _baseline(pytester, store)
    pytester.makepyfile(test_marker_file="raise SystemExit('collected: must not happen')\n")
    filled = [a.format(store=store, missing=pytester.path / "missing") for a in args]
    result = pytester.runpytest(*QUICK, *filled)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "collected" not in _lines(result)


# --------------------------------------------------------------------------------------
# pytest-xdist: measurements off, one message
# --------------------------------------------------------------------------------------

DISABLED = _module(
    """
    def work():
        CALLS.append("fn")

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_runs_once(as_bench, n):
        assert as_bench(work, setup=lambda: CALLS.append("setup")) is None
        assert not as_bench.enabled and as_bench.measurements == []

    def test_counts():
        assert CALLS == ["setup", "fn"] * 3
    """
)


def test_disable_runs_each_function_once_and_prints_one_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_off=DISABLED)
    store = pytester.path / "store"
    result = pytester.runpytest(*QUICK, "--as-bench-disable", "--as-bench-store", str(store))
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("as-bench: measurements disabled") == 1
    result.stdout.fnmatch_lines(["*- as-bench -*", DISABLE_MESSAGE])
    assert not store.exists() or len(ResultStore(store)) == 0


def test_disable_ignores_the_baseline_and_the_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_off=DISABLED)
    result = pytester.runpytest(
        *QUICK,
        "--as-bench-disable",
        "--as-bench-compare",
        str(pytester.path / "not-read"),
        "--as-bench-fail-on",
        "median:5%",
    )
    assert result.ret == pytest.ExitCode.OK
    assert result.stdout.str().count("as-bench: measurements disabled") == 1


XDIST_WORKER_CONFTEST = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # What pytest-xdist gives a worker's config.
    config.workerinput = {"workerid": "gw0"}
    config.workeroutput = {}
"""


def test_an_xdist_worker_runs_functions_once_and_reports_to_the_controller(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(XDIST_WORKER_CONFTEST)
    pytester.makepyfile(test_off=DISABLED)
    recorder = pytester.inline_run(*QUICK)
    recorder.assertoutcome(passed=4)
    [call] = recorder.getcalls("pytest_sessionfinish")
    assert call.session.config.workeroutput == {"as_bench_unmeasured_calls": 3}


XDIST_CONTROLLER_CONFTEST = """
import types

import pytest

from as_bench import pytest_plugin


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pytest-xdist is loaded (a dev dependency) but starts no workers: -n was not given
    # on the command line. Asking for two workers only now makes this session look like
    # a controller to the as-bench plugin, while its tests still run in-process.
    config.option.numprocesses = 2


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # Two workers finish: one used the fixture twice, one never did.
    config = session.config
    for output in ({"as_bench_unmeasured_calls": 2}, {}):
        node = types.SimpleNamespace(config=config, workeroutput=output)
        pytest_plugin.pytest_testnodedown(node, None)
"""


def test_an_xdist_controller_prints_the_message_once(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(XDIST_CONTROLLER_CONFTEST)
    # The controller runs no tests itself; these stand in for the workers' reports.
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count(XDIST_MESSAGE) == 1


def test_an_xdist_controller_without_benchmarks_prints_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        XDIST_CONTROLLER_CONFTEST.replace('{"as_bench_unmeasured_calls": 2}', "{}")
    )
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    result = pytester.runpytest(*BASE, "--no-header")
    result.assert_outcomes(passed=1)
    assert "as-bench" not in _lines(result).lower()


@dataclass
class FakeConfig:
    """The parts of ``pytest.Config`` that xdist detection reads."""

    plugins: set[str] = field(default_factory=set)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def pluginmanager(self) -> FakeConfig:
        return self

    def hasplugin(self, name: str) -> bool:
        return name in self.plugins

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


def _as_config(fake: object) -> pytest.Config:
    return fake  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("plugins", "options", "worker", "active"),
    [
        (set(), {}, False, False),
        ({"xdist"}, {"numprocesses": None}, False, False),
        ({"xdist"}, {"numprocesses": 0}, False, False),  # -n 0: tests run in-process
        ({"xdist"}, {"numprocesses": 4}, False, True),
        ({"xdist"}, {"numprocesses": "auto"}, False, True),
        ({"xdist"}, {"tx": ["popen"]}, False, True),
        ({"xdist"}, {}, True, True),
        (set(), {}, True, True),  # a worker is a worker, whatever else is loaded
        (set(), {"numprocesses": 4}, False, False),  # an -n of another plugin
    ],
)
def test_xdist_detection(
    plugins: set[str], options: dict[str, Any], worker: bool, active: bool
) -> None:
    fake = FakeConfig(plugins, options)
    if worker:
        fake.workerinput = {"workerid": "gw1"}  # type: ignore[attr-defined]
    config = _as_config(fake)
    assert is_xdist_worker(config) is worker
    assert xdist_active(config) is active
    assert disabled_reason(config) == (XDIST_MESSAGE if active else None)


def test_disable_flag_shares_the_path() -> None:
    config = _as_config(FakeConfig(options={"as_bench_disable": True}))
    assert disabled_reason(config) == DISABLE_MESSAGE
    both = _as_config(FakeConfig({"xdist"}, {"as_bench_disable": True, "numprocesses": 2}))
    assert disabled_reason(both) == XDIST_MESSAGE


# --------------------------------------------------------------------------------------
# Inert unless asked
# --------------------------------------------------------------------------------------


def test_a_session_without_the_fixture_prints_nothing_from_as_bench(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    # --no-header: pytest's own header lists the plugins loaded, as-bench among them.
    result = pytester.runpytest(*BASE, "-rA", "--no-header")
    result.assert_outcomes(passed=1)
    text = _lines(result).lower()
    assert "as-bench" not in text and "as_bench" not in text


@pytest.mark.slow
def test_a_session_without_the_fixture_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    # A fresh interpreter, so that what this process imported does not count.
    pytester.makepyfile(
        test_modules="""
        import sys

        LOADED_ON_USE = ("as_bench.pytest_plugin._", "as_bench.engine", "as_bench.results")

        def test_light():
            assert "as_bench.pytest_plugin" in sys.modules  # it did load
            heavy = [
                name
                for name in sys.modules
                if name.startswith(LOADED_ON_USE) and name != "as_bench.pytest_plugin._options"
            ]
            assert heavy == []
        """
    )
    result = pytester.runpytest_subprocess(*BASE, "--no-header")
    result.assert_outcomes(passed=1)
    assert "as-bench" not in _lines(result).lower()


def test_options_and_marker_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "as-bench measurements (the as_bench fixture):",
            "*--as-bench-store=DIR*",
            "*--as-bench-compare=*BASELINE*",
            "*--as-bench-fail-on=EXPR*",
            "*--as-bench-disable*",
        ]
    )
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.as_bench(device='cpu', **options): *"])
    fixtures = pytester.runpytest("--fixtures")
    fixtures.stdout.fnmatch_lines(["as_bench -- *pytest_plugin*"])


def test_the_plugin_module_exports_the_fixture_and_its_type() -> None:
    from as_bench.pytest_plugin._fixture import AsBench

    assert pytest_plugin.__all__ == ["AsBench", "as_bench"]
    assert pytest_plugin.AsBench is AsBench  # resolved on first use, not at plugin load
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = pytest_plugin.nothing


# --------------------------------------------------------------------------------------
# Device aware: CUDA
# --------------------------------------------------------------------------------------


def _cuda_reason() -> str | None:
    from as_bench.devices import CudaDevice

    return None if CudaDevice.is_available() else f"needs CUDA: {CudaDevice.unavailable_reason()}"


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_reason() is not None, reason=str(_cuda_reason()))
def test_the_fixture_measures_on_cuda_with_device_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gpu="""
        import pytest
        import torch

        @pytest.mark.as_bench(device="cuda")
        def test_matmul(as_bench):
            a = torch.randn(1024, 1024, device="cuda")
            m = as_bench(torch.matmul, a, a, batch_size=1024)
            assert m.device == "cuda:0"
            assert m.device_time is not None

        def test_explicit(as_bench):
            a = torch.randn(256, 256, device="cuda")
            assert as_bench(torch.matmul, a, a, device="cuda:0").device_time is not None
        """
    )
    store = pytester.path / "store"
    result = pytester.runpytest(*QUICK, "--as-bench-store", str(store))
    result.assert_outcomes(passed=2)
    results = {r.benchmark: r for r in read_result_objects(store)}
    matmul = results["test_gpu.py::test_matmul"]
    assert matmul.device == "cuda:0"
    assert matmul.measurement.device_time is not None
    assert matmul.throughput_items_per_s == pytest.approx(1024 / matmul.median_s)
    result.stdout.fnmatch_lines(["test_gpu.py::test_matmul*cuda:0*"])


# --------------------------------------------------------------------------------------
# Runs: each session stores a numbered run; --as-bench-compare alone means the latest
# --------------------------------------------------------------------------------------


def test_each_session_is_a_numbered_run_and_a_bare_compare_takes_the_latest(
    pytester: pytest.Pytester,
) -> None:
    store = pytester.path / "bench"
    _baseline(pytester, store)  # run 0001, 200 µs
    pytester.makepyfile(test_gate=_gated(2.4e-4, seed=1))  # 20% slower
    pytester.runpytest(*QUICK, "--as-bench-store", str(store)).assert_outcomes(passed=1)
    # Run 0003, back at 200 µs, gated against the latest run (0002, the slow one): an
    # improvement, so it passes; against 0001 (named) it is unchanged, and passes too.
    pytester.makepyfile(test_gate=_gated(2e-4, seed=2))
    result = pytester.runpytest(
        *QUICK,
        "--as-bench-store",
        str(store),
        "--as-bench-fail-on",
        "median:5%",
        "--as-bench-compare",
    )
    assert result.ret == pytest.ExitCode.OK, _lines(result)
    result.stdout.fnmatch_lines(
        [
            f"as-bench: 1 benchmark(s) compared with {store} run 0002 (*) of 2 runs*",
            "test_gate.py::test_busy *improvement",
            "as-bench gate passed (--as-bench-fail-on median:5%)",
            f"as-bench: 1 result(s) appended to {store} as run 0003 (*)",
        ]
    )
    runs = [r.run or "-" for r in ResultStore(store).load()]
    assert sorted(runs) == ["0001", "0002", "0003"]
    # Naming a run: the slow one fails against the first.
    pytester.makepyfile(test_gate=_gated(2.4e-4, seed=3))
    named = pytester.runpytest(
        *QUICK, f"--as-bench-compare={store}@1", "--as-bench-fail-on", "median:5%"
    )
    assert named.ret == pytest.ExitCode.TESTS_FAILED, _lines(named)
    named.stdout.fnmatch_lines([f"as-bench: 1 benchmark(s) compared with {store} run 0001 (*"])


def test_a_bare_compare_without_a_store_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=_gated(2e-4))
    result = pytester.runpytest(*QUICK, "--as-bench-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--as-bench-compare without a value compares with the latest run*--as-bench-store DIR*"]
    )


def test_a_bare_compare_with_an_empty_store_says_to_store_a_run_first(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_gate=_gated(2e-4))
    store = pytester.path / "fresh"
    result = pytester.runpytest(*QUICK, "--as-bench-store", str(store), "--as-bench-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no results at*store a run there first*"])


def test_comparing_re_measures_noisy_measurements(pytester: pytest.Pytester) -> None:
    # The busy fake device (45% of calls wait for a core) is noisy on every attempt: when
    # storing or comparing, the plugin measures it three times and pools the samples.
    pytester.makepyfile(
        test_noisy=_module(
            """
            def test_busy(as_bench):
                rng = random.Random(3)

                def call(_):
                    body = 2e-4 * rng.lognormvariate(0.0, 0.01)
                    return body * rng.uniform(2.0, 6.0) if rng.random() < 0.45 else body

                m = as_bench(noop, device=FakeDevice(call))
                print("ATTEMPTS", m.attempts)
            """
        )
    )
    store = pytester.path / "bench"
    alone = pytester.runpytest(*QUICK, "-s")
    alone.stdout.fnmatch_lines(["*ATTEMPTS 1"])  # neither stored nor compared: once
    # A stored baseline is measured as the runs compared with it will be.
    first = pytester.runpytest(*QUICK, "-s", "--as-bench-store", str(store))
    first.stdout.fnmatch_lines(["*ATTEMPTS 3"])
    second = pytester.runpytest(*QUICK, "-s", f"--as-bench-compare={store}")
    second.stdout.fnmatch_lines(["*ATTEMPTS 3"])
    third = pytester.runpytest(
        *QUICK, "-s", f"--as-bench-compare={store}", "--as-bench-remeasure-noisy", "0"
    )
    third.stdout.fnmatch_lines(["*ATTEMPTS 1"])
