"""measure() on the CPU: phases, calibration, stopping, warnings, errors, memory, threads."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import numpy as np
import pytest

from as_bench.devices import CpuDevice
from as_bench.engine import MeasureOptions, measure
from as_bench.exceptions import MeasurementError
from as_bench.measurement import Measurement


def busy_wait(seconds: float) -> None:
    """Spin for ``seconds``: a call whose true duration is known."""
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


def _check_consistent(m: Measurement) -> None:
    assert len(m.latency.samples_s) == m.latency.stats.n
    assert m.latency.stats.n >= 2
    assert m.inner_loops >= 1
    assert m.total_seconds >= m.warmup.seconds
    assert m.stop_reason
    assert Measurement.model_validate_json(m.model_dump_json()) == m


# -- calibration ------------------------------------------------------------------------


def test_a_10_us_call_gets_an_inner_loop_and_an_accurate_median() -> None:
    m = measure(busy_wait, 10e-6, options=MeasureOptions(max_time_s=2.0))
    _check_consistent(m)
    assert m.inner_loops > 1
    assert m.latency.stats.median == pytest.approx(10e-6, rel=0.25)
    assert m.latency.timer == "perf_counter"
    assert m.device_time is None and m.primary is m.latency


def test_a_20_ms_call_is_timed_one_call_per_sample() -> None:
    m = measure(busy_wait, 0.02, options=MeasureOptions.quick(min_samples=5))
    _check_consistent(m)
    assert m.inner_loops == 1
    assert m.latency.stats.median == pytest.approx(0.02, rel=0.25)


def test_fixed_inner_loops_skip_calibration() -> None:
    m = measure(busy_wait, 1e-5, options=MeasureOptions.quick(inner_loops=7))
    assert m.inner_loops == 7


def test_the_inner_loop_respects_its_caps() -> None:
    m = measure(len, "x", options=MeasureOptions.quick(max_inner_loops=50, max_overhead_ratio=1e-6))
    assert m.inner_loops <= 50
    assert any("overhead" in w for w in m.warnings)


# -- stopping --------------------------------------------------------------------------


def test_a_constant_time_function_converges_quickly() -> None:
    m = measure(busy_wait, 200e-6)
    _check_consistent(m)
    assert m.converged
    assert m.stop_reason.startswith("converged")
    assert m.latency.stats.ci_halfwidth_relative <= 0.01
    assert m.total_seconds < MeasureOptions().max_time_s
    assert not any("did not converge" in w for w in m.warnings)


def test_default_options_measure_a_1_ms_function_in_well_under_3_s() -> None:
    start = time.perf_counter()
    m = measure(busy_wait, 1e-3)
    assert time.perf_counter() - start < 3.0
    assert m.converged
    assert m.latency.stats.median == pytest.approx(1e-3, rel=0.1)


_bimodal = random.Random(1234)


def bimodal() -> None:
    """Half the calls take 50 µs, half 2 ms: the median's CI straddles both modes."""
    busy_wait(2e-3 if _bimodal.random() < 0.5 else 50e-6)


def test_a_very_noisy_function_hits_the_time_limit_unconverged() -> None:
    options = MeasureOptions(max_time_s=0.4, min_time_s=0.05, inner_loops=1)
    start = time.perf_counter()
    m = measure(bimodal, options=options)
    assert time.perf_counter() - start < 0.4 + 2.0 + 1.0  # sampling + warm-up cap + slack
    assert not m.converged
    assert m.stop_reason.startswith("time limit: max_time_s=0.4")
    assert any(w.startswith("did not converge") for w in m.warnings)
    assert any("noisy" in w for w in m.warnings)


def test_min_samples_are_respected() -> None:
    m = measure(
        busy_wait,
        1e-3,
        options=MeasureOptions.quick(min_samples=40, max_time_s=0.05, min_time_s=0.0),
    )
    assert m.latency.stats.n >= 40


def test_min_time_is_respected() -> None:
    m = measure(busy_wait, 1e-3, options=MeasureOptions.quick(min_time_s=0.3, max_time_s=1.0))
    sampled = sum(m.latency.samples_s) * m.inner_loops
    assert sampled >= 0.3 * 0.9
    assert "after" in m.stop_reason


def test_max_samples_stops_sampling() -> None:
    options = MeasureOptions.quick(max_samples=12, min_samples=5, target_rel_ci=1e-9, batch_size=5)
    m = measure(busy_wait, 1e-4, options=options)
    assert m.latency.stats.n == 12
    assert not m.converged
    assert m.stop_reason.startswith("sample limit")


# -- phases ------------------------------------------------------------------------------


def test_cold_start_is_reported_apart_from_the_samples() -> None:
    first = itertools.count()

    def slow_first_call() -> None:
        busy_wait(0.05 if next(first) == 0 else 1e-4)

    m = measure(slow_first_call, options=MeasureOptions.quick())
    assert m.cold_start_s >= 0.05
    # No sample is the cold call; loosely bounded, since a loaded machine stretches calls.
    assert 0.9e-4 <= m.latency.stats.median < 0.01
    assert m.latency.stats.p90 < 0.05


def test_warm_up_report_respects_its_minimums() -> None:
    options = MeasureOptions.quick(warmup_min_iters=7, warmup_min_time_s=0.03)
    m = measure(busy_wait, 1e-4, options=options)
    w = m.warmup
    assert w.iterations >= 7 and w.seconds >= 0.03
    assert w.first_half_median_s is not None and w.second_half_median_s is not None
    assert w.second_half_median_s >= 0.9e-4
    # A constant busy-wait settles at once unless the machine is very busy; either way the
    # report and the warnings agree.
    unstable_warned = any(x.startswith("warm-up did not stabilise") for x in m.warnings)
    assert w.stable != unstable_warned


def test_warm_up_that_never_settles_is_reported_unstable() -> None:
    calls = itertools.count()

    def ever_slower() -> None:
        busy_wait(20e-6 * (1 + next(calls)))  # 20 µs longer every call

    options = MeasureOptions.quick(warmup_max_time_s=0.05, max_time_s=0.05, inner_loops=1)
    m = measure(ever_slower, options=options)
    assert not m.warmup.stable
    assert m.warmup.seconds >= 0.05
    assert any(w.startswith("warm-up did not stabilise") for w in m.warnings)


def test_setup_is_called_untimed_before_each_phase_and_round() -> None:
    count = itertools.count()

    def setup() -> None:
        next(count)
        time.sleep(0.01)  # would dominate the samples if it were timed

    m = measure(busy_wait, 1e-4, options=MeasureOptions.quick(), setup=setup)
    assert next(count) >= 4  # cold call, warm-up, calibration, at least one round
    assert m.latency.stats.median < 1e-3


def test_keyword_arguments_reach_the_function() -> None:
    seen: list[dict[str, Any]] = []

    def fn(a: int, *, b: int) -> None:
        if not seen:
            seen.append({"a": a, "b": b})

    measure(fn, 1, b=2, options=MeasureOptions.quick())
    assert seen == [{"a": 1, "b": 2}]


# -- errors ------------------------------------------------------------------------------


def test_a_raising_function_gives_a_measurement_error_naming_the_exception() -> None:
    def broken() -> None:
        raise ZeroDivisionError("no dividing by zero")

    with pytest.raises(MeasurementError, match="ZeroDivisionError: no dividing by zero") as info:
        measure(broken, options=MeasureOptions.quick())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "broken" in str(info.value) and "cold call" in str(info.value)


def test_a_function_failing_later_names_the_phase() -> None:
    calls = itertools.count()

    def fails_on_call_50() -> None:
        if next(calls) == 50:
            raise KeyError("late")

    with pytest.raises(MeasurementError, match="KeyError") as info:
        measure(fails_on_call_50, options=MeasureOptions.quick(warmup_min_iters=3))
    assert isinstance(info.value.__cause__, KeyError)


def test_a_raising_setup_is_named() -> None:
    def bad_setup() -> None:
        raise RuntimeError("setup broke")

    with pytest.raises(
        MeasurementError, match=r"setup .*bad_setup raised RuntimeError: setup broke"
    ):
        measure(busy_wait, 1e-5, options=MeasureOptions.quick(), setup=bad_setup)


def test_non_callables_are_type_errors() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        measure(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="setup must be callable"):
        measure(busy_wait, 1e-5, setup=3)  # type: ignore[arg-type]


# -- records -----------------------------------------------------------------------------


def test_raw_samples_threads_and_device_are_recorded() -> None:
    m = measure(busy_wait, 1e-4, device=CpuDevice(), options=MeasureOptions.quick(threads=2))
    assert m.device == "cpu"
    assert not m.isolated
    assert len(m.latency.samples_s) == m.latency.stats.n
    assert all(s > 0 for s in m.latency.samples_s)
    for key in ("requested", "cpu_count", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert key in m.threads
    assert m.threads["requested"] == 2
    assert m.threads["cpu_count"] is not None


def test_torch_threads_are_set_and_restored_when_torch_is_loaded() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    m = measure(busy_wait, 1e-4, options=MeasureOptions.quick(threads=1))
    assert m.threads["torch_intra_op"] == 1
    assert torch.get_num_threads() == before
    assert not any("not applied" in w for w in m.warnings)


def test_host_memory_peak_rises_with_a_200_mb_allocation() -> None:
    def allocate() -> None:
        np.ones(25_000_000)  # 200 MB, every page written, freed on return

    m = measure(allocate, options=MeasureOptions.quick())
    memory = m.memory
    assert memory.host_peak_rss_bytes is not None and memory.host_baseline_rss_bytes is not None
    assert memory.host_peak_rss_bytes - memory.host_baseline_rss_bytes >= 150_000_000


def test_memory_tracking_can_be_turned_off() -> None:
    m = measure(busy_wait, 1e-5, options=MeasureOptions.quick(track_memory=False))
    assert m.memory.host_peak_rss_bytes is None
