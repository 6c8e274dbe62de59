"""The CPU device: call loops, its clock, overhead, memory tracking."""

from __future__ import annotations

import time

import numpy as np
import pytest

from as_bench.devices import CpuDevice, MemoryTracker, make_call_loop
from as_bench.measurement import MemoryReport
from as_bench.testing import FakeClock


def test_call_loop_makes_exactly_n_calls_with_arguments() -> None:
    calls: list[tuple[object, ...]] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append((args, tuple(sorted(kwargs.items()))))

    make_call_loop(record)(3)
    make_call_loop(record, (1, 2))(2)
    make_call_loop(record, (1,), {"k": 5})(1)
    finished: list[object] = []
    make_call_loop(lambda x: x * 2, (21,), finish=finished.append)(2)
    make_call_loop(lambda x: x, (), {"x": 1}, finish=finished.append)(1)
    make_call_loop(record)(0)
    assert calls == [((), ())] * 3 + [((1, 2), ())] * 2 + [((1,), (("k", 5),))]
    assert finished == [42, 42, 1]


def test_cpu_latency_samples_time_the_calls_on_the_devices_clock() -> None:
    clock = FakeClock(step_ns=30)  # every read costs 30 ns
    device = CpuDevice(clock=clock)
    assert device.clock is clock and not device.has_default_clock
    loop = device.make_call_loop(clock.advance, (0.002,))  # each call "takes" 2 ms
    samples = device.latency_samples(loop, 2, 3)
    assert samples == [2 * 2_000_000 + 30] * 3  # two calls and one read, exactly
    assert device.device_time_samples(loop, 1, 2) is None
    device.synchronize()  # a no-op that exists


def test_the_default_clock_is_perf_counter_ns() -> None:
    device = CpuDevice()
    assert device.clock is time.perf_counter_ns and device.has_default_clock
    samples = device.latency_samples(device.make_call_loop(time.sleep, (0.001,)), 1, 2)
    assert all(isinstance(v, int) and v >= 1_000_000 for v in samples)  # sleeps >= 1 ms


def test_timer_overhead_is_the_cost_of_an_empty_sample() -> None:
    device = CpuDevice(clock=FakeClock(step_ns=40))
    assert device.timer_overhead_ns(device.make_call_loop(lambda: None)) == 40.0


@pytest.mark.timing
def test_timer_overhead_is_small_and_positive() -> None:
    device = CpuDevice()
    overhead = device.timer_overhead_ns(device.make_call_loop(lambda: None))
    assert 0 < overhead < 1_000_000  # well under a millisecond (usually ~100 ns)


def test_cpu_describe_and_labels() -> None:
    device = CpuDevice()
    facts = device.describe()
    assert facts["kind"] == "cpu"
    assert isinstance(facts["logical_cores"], int) and facts["logical_cores"] >= 1
    assert device.latency_timer == "perf_counter"
    assert device.device_timer is None and device.device_label is None
    assert not device.asynchronous


def test_memory_tracker_sees_a_200_mb_allocation() -> None:
    tracker = CpuDevice().memory_tracker(poll_interval_s=0.001)
    tracker.start()
    started = tracker.sampling  # a local, so mypy does not keep the property narrowed to True
    assert started
    block = np.ones(25_000_000)  # 200 MB, every page touched
    tracker.stop_sampling()  # takes a last sample: the block is still there
    del block
    report = tracker.report()
    assert not tracker.sampling
    assert isinstance(report, MemoryReport)
    assert report.host_peak_rss_bytes is not None and report.host_baseline_rss_bytes is not None
    assert report.host_peak_rss_bytes - report.host_baseline_rss_bytes >= 150_000_000
    assert report.device_peak_allocated_bytes is None  # the CPU has no device memory
    assert tracker.samples_taken >= 2


def test_memory_tracker_misuse() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryTracker(poll_interval_s=0)
    tracker = MemoryTracker()
    tracker.start()
    with pytest.raises(RuntimeError, match="twice"):
        tracker.start()
    tracker.stop_sampling()
    tracker.stop_sampling()  # twice is fine
    assert tracker.report().host_peak_rss_bytes is not None


def test_a_failing_device_poll_stops_polling_but_not_the_tracker() -> None:
    polls: list[int] = []

    def broken() -> None:
        polls.append(1)
        raise RuntimeError("poll failed")

    tracker = MemoryTracker(poll_interval_s=0.001, poll_device=broken)
    tracker.start()  # polls once at the start: the failure happens here
    report = tracker.report()  # the thread and the last sample no longer poll
    assert report.host_peak_rss_bytes is not None
    assert polls == [1]
    assert tracker.samples_taken >= 2
