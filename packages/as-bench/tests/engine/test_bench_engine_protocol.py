"""The engine's protocol on an event-timed device, checked with a fake GPU.

CUDA and MPS run only on their machines; :class:`~as_bench.testing.FakeEventDevice` is
asynchronous with an event timer and logs what the engine asks of it (batches,
synchronisations, order), on fake time, so the sampling protocol is tested everywhere.
"""

from __future__ import annotations

import itertools

import pytest

from as_bench.engine import MeasureOptions, measure
from as_bench.testing import FakeDevice, FakeEventDevice


def noop() -> None:
    """The measured function: its cost is the fake device's."""


def test_device_time_and_latency_are_both_reported_and_labelled() -> None:
    # 200 µs of device work per call; a synchronisation costs 5 µs more of latency.
    device = FakeEventDevice(2e-4, sync_s=5e-6)
    m = measure(noop, device=device, options=MeasureOptions.quick())
    assert m.device_time is not None
    assert m.device_time.label == "device time, back-to-back (fake events)"
    assert m.device_time.timer == "cuda_events"
    assert m.latency.label == "latency (synchronised wall clock)"
    assert m.primary is m.device_time
    assert m.device_time.stats.n == m.latency.stats.n
    assert m.device_time.stats.median == pytest.approx(2e-4, rel=1e-9)
    # Latency is of synchronised calls: every call pays its synchronisation.
    assert m.latency.stats.median == pytest.approx(2.05e-4, rel=1e-3)


def test_rounds_interleave_latency_and_device_batches_of_equal_size() -> None:
    device = FakeEventDevice(1e-4)
    rounds: list[int] = []

    def setup() -> None:
        rounds.append(len(device.requests))

    measure(noop, device=device, options=MeasureOptions.quick(), setup=setup)
    sampling = [entry for entry in device.requests if entry[0] == "device"]
    assert sampling, "no device-time batch was taken"
    first = device.requests.index(sampling[0]) - 1
    pairs = device.requests[first:]
    assert len(pairs) % 2 == 0
    for (kind_a, n_a), (kind_b, n_b) in zip(pairs[::2], pairs[1::2], strict=True):
        assert (kind_a, kind_b) == ("latency", "device")
        assert n_a == n_b
    # setup ran before each round: the log grows by exactly one pair between two calls.
    sampling_rounds = [r for r in rounds if r >= first]
    steps = [b - a for a, b in itertools.pairwise(sampling_rounds)]
    assert steps == [2] * (len(sampling_rounds) - 1)


def test_device_time_can_be_turned_off() -> None:
    device = FakeEventDevice(1e-4)
    m = measure(noop, device=device, options=MeasureOptions.quick(device_time=False))
    assert m.device_time is None
    assert all(kind == "latency" for kind, _ in device.requests)


def test_latency_on_an_asynchronous_device_synchronises_every_call() -> None:
    # A latency sample of n calls must be n synchronised calls, not n launches and one
    # sync: otherwise a GPU's "latency" is really its throughput.
    device = FakeEventDevice(1e-6, sync_s=1e-6)
    loop = device.make_call_loop(noop)
    samples = device.latency_samples(loop, 5, 3)
    assert device.syncs == 3 * (5 + 2)
    # Each sample times one clock read, 5 calls, their 5 synchronisations and the final
    # one (the synchronisation before the first clock read is outside).
    assert samples == [50 + 5 * 1000 + 6 * 1000] * 3


def test_latency_on_a_synchronous_device_runs_calls_back_to_back() -> None:
    device = FakeDevice(1e-6, sync_s=1e-6)
    loop = device.make_call_loop(noop)
    samples = device.latency_samples(loop, 5, 3)
    assert device.syncs == 3 * 2
    assert samples == [50 + 5 * 1000 + 1000] * 3  # the calls, then one synchronisation


def test_device_time_samples_synchronise_once_per_batch() -> None:
    device = FakeEventDevice(1e-6, sync_s=1e-6)
    loop = device.make_call_loop(noop)
    assert device.device_time_samples(loop, 4, 3) == pytest.approx([4e-6] * 3)
    assert device.syncs == 1
