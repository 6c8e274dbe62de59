"""The engine's protocol on an event-timed device, checked with a CPU-backed stand-in.

CUDA and MPS run only on their machines; this device records what the engine asks of a
device with an event timer (batches, synchronisations, order) while timing real calls on
the CPU, so the sampling protocol is tested everywhere.
"""

from __future__ import annotations

import itertools
import time
from typing import ClassVar

from as_bench.devices import CallLoop, CpuDevice, Device
from as_bench.engine import MeasureOptions, measure
from as_bench.measurement import TimerKind


def busy_wait(seconds: float) -> None:
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


class EventTimedCpu(CpuDevice):
    """The CPU, presented as a device with an event timer; it logs the engine's requests."""

    asynchronous: ClassVar[bool] = True
    latency_timer: ClassVar[TimerKind] = "sync_clock"
    latency_label: ClassVar[str] = "latency (synchronised wall clock)"
    device_timer: ClassVar[TimerKind | None] = "cuda_events"
    device_label: ClassVar[str | None] = "device time (stand-in events)"

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.syncs = 0

    def synchronize(self) -> None:
        self.syncs += 1

    def latency_samples(self, loop: CallLoop, inner: int, count: int) -> list[int]:
        self.log.append(("latency", count))
        # The generic (asynchronous-aware) protocol, not the CPU's sync-free shortcut.
        return Device.latency_samples(self, loop, inner, count)

    def device_time_samples(self, loop: CallLoop, inner: int, count: int) -> list[float] | None:
        self.log.append(("device", count))
        stamps = []
        for _ in range(count):
            start = time.perf_counter_ns()
            loop(inner)
            stamps.append((start, time.perf_counter_ns()))
        self.synchronize()  # one per batch, as CUDA and MPS do
        return [(end - start) * 1e-9 for start, end in stamps]


def test_device_time_and_latency_are_both_reported_and_labelled() -> None:
    device = EventTimedCpu()
    m = measure(busy_wait, 2e-4, device=device, options=MeasureOptions.quick())
    assert m.device_time is not None
    assert m.device_time.label == "device time (stand-in events)"
    assert m.latency.label == "latency (synchronised wall clock)"
    assert m.primary is m.device_time
    assert m.device_time.stats.n == m.latency.stats.n
    # Both time the same 200 µs busy-wait (loosely: a loaded machine stretches calls).
    assert 1.9e-4 <= m.device_time.stats.median < 2e-3
    assert 1.9e-4 <= m.latency.stats.median < 2e-3


def test_rounds_interleave_latency_and_device_batches_of_equal_size() -> None:
    device = EventTimedCpu()
    rounds: list[int] = []

    def setup() -> None:
        rounds.append(len(device.log))

    measure(busy_wait, 1e-4, device=device, options=MeasureOptions.quick(), setup=setup)
    sampling = [entry for entry in device.log if entry[0] == "device"]
    assert sampling, "no device-time batch was taken"
    first = device.log.index(sampling[0]) - 1
    pairs = device.log[first:]
    assert len(pairs) % 2 == 0
    for (kind_a, n_a), (kind_b, n_b) in zip(pairs[::2], pairs[1::2], strict=True):
        assert (kind_a, kind_b) == ("latency", "device")
        assert n_a == n_b
    # setup ran before each round: the log grows by exactly one pair between two calls.
    sampling_rounds = [r for r in rounds if r >= first]
    steps = [b - a for a, b in itertools.pairwise(sampling_rounds)]
    assert steps == [2] * (len(sampling_rounds) - 1)


def test_device_time_can_be_turned_off() -> None:
    device = EventTimedCpu()
    m = measure(busy_wait, 1e-4, device=device, options=MeasureOptions.quick(device_time=False))
    assert m.device_time is None
    assert all(kind == "latency" for kind, _ in device.log)


def test_latency_on_an_asynchronous_device_synchronises_every_call() -> None:
    # A latency sample of n calls must be n synchronised calls, not n launches and one
    # sync: otherwise a GPU's "latency" is really its throughput.
    device = EventTimedCpu()
    loop = device.make_call_loop(busy_wait, (1e-6,))
    device.syncs = 0
    device.latency_samples(loop, 5, 3)
    assert device.syncs == 3 * (5 + 2)


def test_latency_on_a_synchronous_device_runs_calls_back_to_back() -> None:
    device = EventTimedCpu()
    type(device).asynchronous = False
    try:
        loop = device.make_call_loop(busy_wait, (1e-6,))
        device.syncs = 0
        device.latency_samples(loop, 5, 3)
        assert device.syncs == 3 * 2
    finally:
        type(device).asynchronous = True
