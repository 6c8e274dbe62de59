"""CUDA: events for device time with one synchronize per batch, synchronised latency, memory.

Runs only where ``torch.cuda.is_available()``; elsewhere every test is skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from as_bench.devices import CudaDevice, get_device
from as_bench.engine import MeasureOptions, measure

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not CudaDevice.is_available(),
        reason=f"needs CUDA: {CudaDevice.unavailable_reason()}",
    ),
]


@pytest.fixture
def torch() -> Any:
    import torch

    return torch


def test_cuda_spec_normalises_and_describes() -> None:
    device = get_device("cuda")
    assert device.name == "cuda:0"
    assert get_device("cuda:0") == device
    facts = device.describe()
    assert facts["kind"] == "cuda" and facts["name"] and facts["total_memory_bytes"] > 0


def test_out_of_range_index_says_how_many(torch: Any) -> None:
    count = torch.cuda.device_count()
    with pytest.raises(Exception, match=f"torch sees {count} CUDA device"):
        get_device(f"cuda:{count}")


def test_device_time_batch_synchronizes_once(torch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    device = CudaDevice(0)
    a = torch.randn(1024, 1024, device="cuda:0")
    loop = device.make_call_loop(torch.mm, (a, a))
    loop(3)
    device.synchronize()
    calls: list[object] = []
    real = torch.cuda.synchronize

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        real(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "synchronize", counting)
    samples = device.device_time_samples(loop, 4, 8)
    assert samples is not None and len(samples) == 8
    assert len(calls) == 1  # one synchronize for the whole batch of 8 samples
    assert all(s > 0 for s in samples)


def test_measure_reports_device_time_and_latency_labelled(torch: Any) -> None:
    a = torch.randn(2048, 2048, device="cuda:0")
    m = measure(torch.mm, a, a, device="cuda:0", options=MeasureOptions.quick())
    assert m.device == "cuda:0"
    assert m.device_time is not None
    assert m.device_time.timer == "cuda_events" and "CUDA events" in m.device_time.label
    assert m.latency.timer == "sync_clock" and "synchronised" in m.latency.label
    assert m.primary is m.device_time
    assert m.device_time.stats.n == m.latency.stats.n
    # A 2048^3 matmul keeps the GPU busy: device time and latency agree within reason.
    ratio = m.latency.stats.median / m.device_time.stats.median
    assert 0.8 < ratio < 3.0, ratio


def test_cuda_memory_fields_are_filled(torch: Any) -> None:
    def allocate() -> Any:
        return torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device="cuda:0").fill_(1)

    m = measure(allocate, device="cuda:0", options=MeasureOptions.quick())
    memory = m.memory
    assert memory.device_peak_allocated_bytes is not None
    assert memory.device_peak_allocated_bytes >= 64 * 1024 * 1024
    assert memory.device_peak_reserved_bytes is not None
    assert memory.device_peak_reserved_bytes >= memory.device_peak_allocated_bytes
    assert memory.device_budget_bytes == torch.cuda.get_device_properties(0).total_memory


def test_small_kernels_get_an_inner_loop(torch: Any) -> None:
    a = torch.randn(16, device="cuda:0")
    m = measure(torch.add, a, a, device="cuda:0", options=MeasureOptions.quick())
    assert m.inner_loops > 1
    assert m.device_time is not None


def test_per_call_device_time_synchronizes_after_every_call(
    torch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = CudaDevice(0)
    a = torch.randn(1024, 1024, device="cuda:0")
    loop = device.make_call_loop(torch.mm, (a, a))
    loop(3)
    device.synchronize()
    calls: list[object] = []
    real = torch.cuda.synchronize

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        real(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "synchronize", counting)
    samples = device.per_call_device_time_samples(loop, 3, 4)
    assert samples is not None and len(samples) == 4
    assert len(calls) == 1 + 3 * 4  # one first, then one after every call
    assert all(s > 0 for s in samples)


def test_per_call_and_back_to_back_agree_on_a_compute_bound_matmul(torch: Any) -> None:
    a = torch.randn(4096, 4096, device="cuda:0", dtype=torch.bfloat16)
    per_call = measure(
        torch.mm, a, a, device="cuda:0", options=MeasureOptions.quick(device_timing="per_call")
    )
    batched = measure(torch.mm, a, a, device="cuda:0", options=MeasureOptions.quick())
    assert per_call.device_time is not None and batched.device_time is not None
    assert per_call.device_time.timer == "cuda_events_per_call"
    assert per_call.device_time.label == "device time, per call (CUDA events)"
    assert batched.device_time.timer == "cuda_events"
    assert batched.device_time.label == "device time, back-to-back (CUDA events)"
    # Within 2% on an H200; loose here: this checks the wiring, not the GPU.
    ratio = per_call.device_time.stats.median / batched.device_time.stats.median
    assert 0.8 < ratio < 1.25, ratio
