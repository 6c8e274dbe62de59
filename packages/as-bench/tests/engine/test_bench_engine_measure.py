"""measure(): phases, calibration, stopping, warnings, errors, memory, threads.

The engine's decisions (the inner loop, warm-up stability, when sampling stops and why)
are tested on a :class:`~as_bench.testing.FakeDevice`, whose calls cost exact fake time,
so they hold on a busy machine. A few ``timing`` tests measure real time, loosely.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from as_bench.devices import CpuDevice
from as_bench.engine import MeasureOptions, measure
from as_bench.exceptions import MeasurementError
from as_bench.measurement import Measurement
from as_bench.testing import CLOCK_READ_NS, FakeDevice

READ_S = CLOCK_READ_NS * 1e-9  # what one read of a FakeDevice's clock costs


def busy_wait(seconds: float) -> None:
    """Spin for ``seconds``: a call whose true duration is known."""
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


def noop() -> None:
    """The measured function of fake-time tests: its cost is the FakeDevice's."""


def noisy(seconds: float, spread: float = 0.1, seed: int = 0) -> Callable[[int], float]:
    """A cost of ``seconds`` ±``spread`` (uniform, seeded) per call."""
    rng = random.Random(seed)
    return lambda _: seconds * rng.uniform(1 - spread, 1 + spread)


def per_call(cost_s: float, inner: int) -> float:
    """What a sample of ``inner`` calls of ``cost_s`` reads per call on the fake clock."""
    return (inner * cost_s + READ_S) / inner


def sampling_seconds(m: Measurement) -> float:
    """The samples' own time (calls and clock reads), seconds."""
    return sum(m.latency.samples_s) * m.inner_loops


def _check_consistent(m: Measurement) -> None:
    assert len(m.latency.samples_s) == m.latency.stats.n
    assert m.latency.stats.n >= 2
    assert m.inner_loops >= 1
    assert m.total_seconds >= m.warmup.seconds
    assert m.stop_reason
    assert Measurement.model_validate_json(m.model_dump_json()) == m


# -- calibration ------------------------------------------------------------------------


def test_a_10_us_call_gets_an_inner_loop_and_an_accurate_median() -> None:
    m = measure(noop, device=FakeDevice(10e-6), options=MeasureOptions(max_time_s=2.0))
    _check_consistent(m)
    # 50 ns of clock overhead must be at most 0.01% of a sample: 500 µs, 50 calls.
    assert m.inner_loops == 50
    assert m.latency.stats.median == pytest.approx(per_call(10e-6, 50), rel=1e-9)
    assert m.latency.stats.median == pytest.approx(10e-6, rel=1e-3)
    assert m.latency.timer == "perf_counter"
    assert m.device_time is None and m.primary is m.latency
    assert not any("overhead" in w for w in m.warnings)


@pytest.mark.timing
def test_a_real_10_us_busy_wait_gets_an_inner_loop_and_a_plausible_median() -> None:
    m = measure(busy_wait, 10e-6, options=MeasureOptions.quick())
    _check_consistent(m)
    assert m.inner_loops > 1
    # Real time on a shared machine: preemption stretches some samples, never shortens
    # one, so the fastest sample is bounded on both sides and the median from below.
    assert 0.5 * 10e-6 <= m.latency.stats.min <= 5 * 10e-6
    assert m.latency.stats.median >= 0.5 * 10e-6
    assert m.latency.timer == "perf_counter"


def test_a_20_ms_call_is_timed_one_call_per_sample() -> None:
    m = measure(noop, device=FakeDevice(0.02), options=MeasureOptions.quick(min_samples=5))
    _check_consistent(m)
    assert m.inner_loops == 1
    assert m.latency.stats.median == pytest.approx(0.02 + READ_S, rel=1e-9)


def test_a_call_just_under_calibrate_below_s_gets_an_inner_loop() -> None:
    # 50 ns / 1e-5 asks for 5 ms samples: 6 calls of 0.9 ms, but 1 ms calls stay single.
    options = MeasureOptions.quick(calibrate_below_s=1e-3, max_overhead_ratio=1e-5)
    assert measure(noop, device=FakeDevice(1e-3), options=options).inner_loops == 1
    assert measure(noop, device=FakeDevice(0.9e-3), options=options).inner_loops == 6


def test_fixed_inner_loops_skip_calibration() -> None:
    device = FakeDevice(1e-5)
    m = measure(noop, device=device, options=MeasureOptions.quick(inner_loops=7))
    assert m.inner_loops == 7
    # Calibration only measured the overhead (empty samples): no sample of n calls.
    warm_and_cold = 1 + m.warmup.iterations
    assert device.calls == warm_and_cold + 7 * m.latency.stats.n


def test_the_inner_loop_respects_its_caps() -> None:
    options = MeasureOptions.quick(max_inner_loops=50, max_overhead_ratio=1e-6)
    m = measure(noop, device=FakeDevice(1e-7), options=options)
    assert m.inner_loops == 50
    overhead = [w for w in m.warnings if "overhead" in w]
    assert overhead and "held back by max_inner_loops" in overhead[0], m.warnings


def test_the_inner_loop_keeps_a_sample_under_max_sample_time() -> None:
    # 50 ns / 1e-4 asks for 500 µs samples; the cap allows 100 µs: 10 calls of 10 µs.
    options = MeasureOptions.quick(max_sample_time_s=100e-6, overhead_warn_factor=1)
    m = measure(noop, device=FakeDevice(10e-6), options=options)
    assert m.inner_loops == 10
    assert any("held back by max_sample_time_s" in w for w in m.warnings), m.warnings


# -- stopping --------------------------------------------------------------------------


def test_a_stable_function_converges_once_min_time_has_passed() -> None:
    options = MeasureOptions()
    m = measure(noop, device=FakeDevice(noisy(200e-6)), options=options)
    _check_consistent(m)
    assert m.converged
    assert m.stop_reason.startswith("converged")
    assert m.latency.stats.ci_halfwidth_relative <= options.target_rel_ci
    assert options.min_time_s <= sampling_seconds(m) < options.min_time_s + options.batch_time_s
    assert m.total_seconds < options.max_time_s
    assert not any("did not converge" in w for w in m.warnings)


def test_default_options_measure_a_1_ms_function_in_well_under_3_s() -> None:
    m = measure(noop, device=FakeDevice(1e-3))
    assert m.total_seconds < 3.0  # fake seconds: the engine's own budget, exactly
    assert m.converged
    assert m.latency.stats.median == pytest.approx(1e-3 + READ_S, rel=1e-9)


def bimodal(seed: int = 1234) -> Callable[[int], float]:
    """Half the calls take 50 µs, half 2 ms: the median's CI straddles both modes."""
    rng = random.Random(seed)
    return lambda _: 2e-3 if rng.random() < 0.5 else 50e-6


def test_a_very_noisy_function_hits_the_time_limit_unconverged() -> None:
    options = MeasureOptions(max_time_s=0.4, min_time_s=0.05, inner_loops=1)
    m = measure(noop, device=FakeDevice(bimodal()), options=options)
    assert not m.converged
    assert m.stop_reason.startswith("time limit: max_time_s=0.4")
    # Sampling stops at the limit, within a round (at most batch_size slow samples).
    assert 0.4 <= sampling_seconds(m) < 0.4 + options.batch_size * 2e-3
    assert any(w.startswith("did not converge") for w in m.warnings)
    assert any("noisy" in w for w in m.warnings)


def test_min_samples_are_respected_past_the_time_limit() -> None:
    options = MeasureOptions.quick(
        min_samples=40, max_time_s=0.01, min_time_s=0.0, target_rel_ci=1e-9
    )
    m = measure(noop, device=FakeDevice(noisy(1e-3)), options=options)
    assert m.latency.stats.n == 40  # 10 ms allows 10 samples of 1 ms; min_samples wins
    assert m.stop_reason.startswith("time limit: max_time_s=0.01 reached after 40 samples")


def test_min_time_is_respected() -> None:
    options = MeasureOptions.quick(min_time_s=0.3, max_time_s=1.0)
    m = measure(noop, device=FakeDevice(1e-3), options=options)
    assert m.converged  # a constant function meets the CI target at once ...
    assert 0.3 <= sampling_seconds(m) < 0.3 + options.batch_time_s  # ... but waits
    assert "after" in m.stop_reason


def test_max_samples_stops_sampling() -> None:
    options = MeasureOptions.quick(max_samples=12, min_samples=5, target_rel_ci=1e-9, batch_size=5)
    m = measure(noop, device=FakeDevice(noisy(1e-4)), options=options)
    assert m.latency.stats.n == 12
    assert not m.converged
    assert m.stop_reason.startswith("sample limit: max_samples=12")


def test_rounds_last_about_batch_time() -> None:
    # 1 ms per sample, 5.5 ms rounds: 5 samples a round although batch_size allows 10.
    device = FakeDevice(1e-3)
    marks: list[int] = []
    options = MeasureOptions.quick(inner_loops=1, batch_size=10, batch_time_s=5.5e-3)
    measure(noop, device=device, options=options, setup=lambda: marks.append(len(device.requests)))
    # setup ran before the cold call, warm-up and calibration, then before each round
    rounds = [count for _, count in device.requests[marks[3] :]]
    assert len(rounds) == len(marks) - 3  # one batch per round
    assert rounds[:-1] == [5] * (len(rounds) - 1)
    assert 1 <= rounds[-1] <= 5  # the last may be cut short by the time limit


# -- phases ------------------------------------------------------------------------------


def test_cold_start_is_reported_apart_from_the_samples() -> None:
    device = FakeDevice(lambda i: 0.05 if i == 0 else 1e-4)
    m = measure(noop, device=device, options=MeasureOptions.quick())
    assert m.cold_start_s == pytest.approx(0.05 + READ_S, rel=1e-9)
    assert m.latency.stats.median == pytest.approx(per_call(1e-4, m.inner_loops), rel=1e-9)
    assert max(m.latency.samples_s) < 0.05 / m.inner_loops  # no sample holds the cold call


def test_warm_up_report_respects_its_minimums() -> None:
    options = MeasureOptions.quick(warmup_min_iters=7, warmup_min_time_s=0.03)
    m = measure(noop, device=FakeDevice(1e-4), options=options)
    w = m.warmup
    assert w.iterations >= 7 and w.seconds >= 0.03
    assert w.stable
    assert w.first_half_median_s == w.second_half_median_s == pytest.approx(1e-4 + READ_S)
    assert not any(x.startswith("warm-up did not stabilise") for x in m.warnings)


def test_warm_up_lasts_until_a_slow_start_has_passed() -> None:
    # Calls start at 1 ms and get 3% faster each (a cache filling), down to 100 µs from
    # call 76 on: the halves of a window differ by more than 5% until then.
    device = FakeDevice(lambda i: max(1e-4, 1e-3 * 0.97**i))
    options = MeasureOptions.quick(warmup_min_iters=2, warmup_min_time_s=0.01)
    m = measure(noop, device=device, options=options)
    assert m.warmup.stable
    assert m.warmup.iterations > 76
    assert m.warmup.second_half_median_s == pytest.approx(1e-4 + READ_S)
    assert m.latency.stats.median == pytest.approx(per_call(1e-4, m.inner_loops), rel=1e-9)


def test_warm_up_that_never_settles_is_reported_unstable() -> None:
    options = MeasureOptions.quick(warmup_max_time_s=0.05, max_time_s=0.05, inner_loops=1)
    m = measure(noop, device=FakeDevice(lambda i: 20e-6 * (1 + i)), options=options)
    assert not m.warmup.stable
    assert 0.05 <= m.warmup.seconds < 0.06  # stops at warmup_max_time_s, within a call
    assert m.warmup.first_half_median_s is not None
    assert m.warmup.second_half_median_s is not None
    assert m.warmup.first_half_median_s < m.warmup.second_half_median_s  # ever slower
    assert any(w.startswith("warm-up did not stabilise") for w in m.warnings)


def test_setup_is_called_untimed_before_each_phase_and_round() -> None:
    device = FakeDevice(1e-4)
    count = itertools.count()

    def setup() -> None:
        next(count)
        device.fake_clock.advance(0.01)  # 10 ms: would dominate the samples if timed

    m = measure(noop, device=device, options=MeasureOptions.quick(), setup=setup)
    calls = next(count)
    # cold call, warm-up, calibration, then one per round
    rounds = sum(1 for kind, _ in device.requests if kind == "latency") - calls + 3
    assert calls >= 4 and rounds >= 1
    assert m.latency.stats.median == pytest.approx(per_call(1e-4, m.inner_loops), rel=1e-9)
    assert m.total_seconds >= 0.01 * calls  # the untimed setup still took its time


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
