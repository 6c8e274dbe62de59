"""as-bench's own performance checks, written with its pytest fixture (``as_bench``).

Not collected by the default test run (its name does not start with ``test_``); run it
by naming it, from the repository root::

    uv run pytest packages/as-bench/benchmarks/perf_engine.py --as-bench-store /tmp/s
    uv run pytest packages/as-bench/benchmarks/perf_engine.py \
        --as-bench-compare /tmp/s --as-bench-fail-on median:5%

Each check measures with the engine's default options and asserts against a figure: the
engine's overhead on a no-op, its accuracy on busy-waits whose truth is known, and the
wall time a measurement takes. The busy-waits spin on ``time.perf_counter_ns()`` until
their target has passed, so they are immune to CPU frequency; what a call costs beyond
the target (entering and leaving the function, one clock read) is measured with a bare
loop and added to the truth.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from itertools import repeat
from time import perf_counter_ns

import pytest

from as_bench import Measurement
from as_bench.pytest_plugin import AsBench

# The figures the checks hold the engine to.
ACCURACY = 0.01  # |median / truth - 1| of a busy-wait (the engine's ±1% goal)
NOOP_OVERHEAD_S = 10e-9  # what the engine may add to a no-op's per-call time over a bare loop
NOOP_WALL_S = 3.0  # a whole default measurement of a no-op, warm-up and calibration included
BUSY_1MS_WALL_S = 4.0  # the same for a 1 ms call


def noop() -> None:
    pass


def busy(target_ns: int) -> None:
    end = perf_counter_ns() + target_ns
    while perf_counter_ns() < end:
        pass


def bare_loop_s(fn: Callable[[], object], calls: int, repetitions: int = 5) -> float:
    """Seconds per call of ``fn`` in a bare ``itertools.repeat`` loop, median of repetitions.

    The loop ``timeit`` uses and as-bench's inner loop uses: the reference the engine's
    per-call figures are judged against.
    """
    times = []
    for _ in range(repetitions):
        start = time.perf_counter_ns()
        for _ in repeat(None, calls):
            fn()
        times.append((time.perf_counter_ns() - start) / calls * 1e-9)
    return statistics.median(times)


def entry_exit_s() -> float:
    """What a busy-wait costs beyond its target: a busy-wait of zero, in a bare loop."""
    return bare_loop_s(lambda: busy(0), 100_000)


def measured(m: Measurement | None) -> Measurement:
    """The measurement, or skip: under pytest-xdist (or --as-bench-disable) none is taken."""
    if m is None:
        pytest.skip("as-bench measurements are disabled in this session")
    return m


def test_noop_overhead(as_bench: AsBench) -> None:
    m = measured(as_bench(noop))
    reference = bare_loop_s(noop, 1_000_000)
    overhead = m.latency.stats.median - reference
    print(
        f"\nno-op: as-bench {m.latency.stats.median * 1e9:.1f} ns/call, bare loop "
        f"{reference * 1e9:.1f} ns/call, overhead {overhead * 1e9:+.1f} ns, "
        f"inner loops {m.inner_loops}, wall {m.total_seconds:.2f} s"
    )
    assert overhead <= NOOP_OVERHEAD_S
    assert m.total_seconds <= NOOP_WALL_S


@pytest.mark.parametrize("target_ns", [10_000, 100_000, 1_000_000], ids=["10us", "100us", "1ms"])
def test_busy_wait_accuracy(as_bench: AsBench, target_ns: int) -> None:
    m = measured(as_bench(busy, target_ns))
    truth = target_ns * 1e-9 + entry_exit_s()
    error = m.latency.stats.median / truth - 1
    print(
        f"\nbusy {target_ns / 1e3:g} µs: median {m.latency.stats.median * 1e6:.3f} µs, truth "
        f"{truth * 1e6:.3f} µs, error {error * 100:+.3f}%, converged {m.converged}"
    )
    assert abs(error) <= ACCURACY
    assert m.converged


def test_several_sizes_in_one_test(as_bench: AsBench) -> None:
    # One test, several named measurements: the store holds perf_engine.py::...[small] etc.
    small = measured(as_bench(busy, 20_000, name="small"))
    large = measured(as_bench(busy, 200_000, name="large"))
    ratio = (large.latency.stats.median - small.latency.stats.median) / 180e-6
    print(f"\n(large - small) / 180 µs = {ratio:.4f}")
    assert abs(ratio - 1) <= ACCURACY


def test_wall_time_of_a_1ms_measurement(as_bench: AsBench) -> None:
    m = measured(as_bench(busy, 1_000_000))
    print(
        f"\n1 ms busy-wait: wall {m.total_seconds:.2f} s, {len(m.latency.samples_s)} "
        f"samples, warm-up {m.warmup.seconds:.3f} s, stop: {m.stop_reason}"
    )
    assert m.total_seconds <= BUSY_1MS_WALL_S
