"""as_bench.testing: the fake clock, the fake devices and the result builders users get."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import as_bench.testing as testing
from as_bench.devices import Device
from as_bench.engine import MeasureOptions, measure
from as_bench.exceptions import MeasurementError
from as_bench.results import BenchmarkResult
from as_bench.testing import (
    FakeClock,
    FakeDevice,
    FakeEventDevice,
    lognormal_samples,
    make_measurement,
    make_result,
    make_series,
)


def test_public_names_are_listed_and_documented() -> None:
    assert sorted(testing.__all__) == [
        "FakeClock",
        "FakeDevice",
        "FakeEventDevice",
        "lognormal_samples",
        "make_measurement",
        "make_result",
        "make_series",
    ]
    for name in testing.__all__:
        doc = inspect.getdoc(getattr(testing, name))
        assert doc and len(doc) > 40, name


def test_import_as_bench_does_not_import_the_doubles() -> None:
    code = "import sys, as_bench, as_bench.engine; print('as_bench.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- FakeClock ---------------------------------------------------------------------------


def test_a_fake_clock_moves_by_its_step_per_read_and_by_advance() -> None:
    clock = FakeClock(start_ns=1_000, step_ns=50)
    assert [clock(), clock(), clock()] == [1_000, 1_050, 1_100]
    assert clock.reads == 3 and clock.now_ns == 1_150  # now_ns does not read
    clock.advance(2.5e-6)
    clock.advance_ns(7)
    assert clock() == 1_150 + 2_500 + 7


def test_a_fake_clock_never_goes_backwards() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1e-9)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_ns(-1)
    with pytest.raises(ValueError, match="step_ns"):
        FakeClock(step_ns=-1)


# -- FakeDevice --------------------------------------------------------------------------


def test_a_fake_device_really_calls_and_charges_each_call_its_cost() -> None:
    seen: list[tuple[int, str]] = []
    device = FakeDevice(lambda i: (i + 1) * 1e-6)  # 1 µs, 2 µs, 3 µs, ...
    loop = device.make_call_loop(lambda a, *, b: seen.append((a, b)), (1,), {"b": "x"})
    assert device.latency_samples(loop, 2, 2) == [1_000 + 2_000 + 50, 3_000 + 4_000 + 50]
    assert seen == [(1, "x")] * 4
    assert device.calls == 4 and device.busy_ns == 10_000
    assert device.requests == [("latency", 2)]
    assert isinstance(device, Device) and device.name == "cpu"
    assert not device.has_default_clock


def test_an_exception_in_the_measured_function_is_real() -> None:
    def broken() -> None:
        raise KeyError("real")

    with pytest.raises(MeasurementError, match="KeyError: 'real'") as info:
        measure(broken, device=FakeDevice(1e-6), options=MeasureOptions.quick())
    assert isinstance(info.value.__cause__, KeyError)


def test_a_fake_device_reports_cpu_time_that_matches_its_clock() -> None:
    device = FakeDevice(others_cores=0.5, cpu_count=4)
    before = device.cpu_times()
    device.fake_clock.advance(2.0)
    after = device.cpu_times()
    assert after.own_busy_s - before.own_busy_s == pytest.approx(2.0)
    assert after.machine_busy_s - before.machine_busy_s == pytest.approx(3.0)
    assert after.cpu_count == 4


def test_a_function_may_advance_the_clock_itself() -> None:
    clock = FakeClock()
    device = FakeDevice(clock=clock)
    m = measure(clock.advance, 2e-3, device=device, options=MeasureOptions.quick())
    assert m.latency.stats.median == pytest.approx(2e-3)
    assert m.inner_loops == 1


def test_a_fake_event_device_times_the_calls_alone_as_device_time() -> None:
    device = FakeEventDevice(1e-3, sync_s=1e-4)
    m = measure(lambda: None, device=device, options=MeasureOptions.quick())
    assert m.device_time is not None
    assert m.device_time.stats.median == pytest.approx(1e-3)
    assert m.latency.stats.median == pytest.approx(1.1e-3, rel=1e-3)


# -- builders ----------------------------------------------------------------------------


def test_lognormal_samples_have_the_median_asked_for() -> None:
    samples = lognormal_samples(2e-4, n=101, sigma=0.1, seed=3)
    assert len(samples) == 101 and min(samples) > 0
    assert sorted(samples)[50] == pytest.approx(2e-4, rel=1e-12)
    assert samples == lognormal_samples(2e-4, n=101, sigma=0.1, seed=3)
    assert samples != lognormal_samples(2e-4, n=101, sigma=0.1, seed=4)
    with pytest.raises(ValueError, match="median_s > 0"):
        lognormal_samples(0.0)


def test_built_records_are_valid_and_round_trip_through_json() -> None:
    series = make_series([1.0, 2.0, 3.0])
    assert series.stats.median == 2.0 and series.timer == "perf_counter"
    m = make_measurement([1e-3, 2e-3, 3e-3], device_samples_s=[1e-3, 1e-3, 1e-3])
    assert m.primary is m.device_time and m.cold_start_s == 3e-3
    result = make_result("mlp/torch/cpu/bs1", median_s=2e-4, hardware={"cpu": "x"})
    assert isinstance(result, BenchmarkResult)
    assert result.workload == "mlp" and result.device == "cpu"
    assert result.median_s == pytest.approx(2e-4)
    assert result.duration_s == 1.0
    assert BenchmarkResult.model_validate_json(result.model_dump_json()) == result


def test_make_result_needs_exactly_one_source_of_latency() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        make_result("a")
    with pytest.raises(ValueError, match="exactly one"):
        make_result("a", [1.0, 2.0], median_s=1.0)
    m = make_measurement([1.0, 2.0])
    assert make_result("a", measurement=m).measurement is m
