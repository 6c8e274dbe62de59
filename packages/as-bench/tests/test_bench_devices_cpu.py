"""The CPU device: call loops, perf_counter timers, overhead, memory tracking."""

from __future__ import annotations

import time

import numpy as np
import pytest

from as_bench.devices import CpuDevice, MemoryTracker, make_call_loop
from as_bench.measurement import MemoryReport


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


def test_cpu_latency_samples_time_the_calls() -> None:
    device = CpuDevice()
    loop = device.make_call_loop(time.sleep, (0.002,))
    samples = device.latency_samples(loop, 2, 3)
    assert len(samples) == 3
    assert all(isinstance(v, int) for v in samples)
    assert all(4_000_000 <= v < 200_000_000 for v in samples)  # two 2 ms sleeps each
    assert device.device_time_samples(loop, 1, 2) is None
    device.synchronize()  # a no-op that exists


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
    assert tracker.sampling
    block = np.ones(25_000_000)  # 200 MB, every page touched
    time.sleep(0.02)
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
    def broken() -> None:
        raise RuntimeError("poll failed")

    tracker = MemoryTracker(poll_interval_s=0.001, poll_device=broken)
    tracker.start()
    time.sleep(0.01)
    report = tracker.report()
    assert report.host_peak_rss_bytes is not None
