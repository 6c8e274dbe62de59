"""MPS (Apple GPU through PyTorch): MPS events for device time, synchronised latency, memory.

Runs only on macOS where ``torch.backends.mps.is_available()``; skipped elsewhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from as_bench.devices import MpsDevice, get_device
from as_bench.engine import MeasureOptions, measure

pytestmark = [
    pytest.mark.macos,
    pytest.mark.skipif(
        not MpsDevice.is_available(), reason=f"needs MPS: {MpsDevice.unavailable_reason()}"
    ),
]


@pytest.fixture
def torch() -> Any:
    import torch

    return torch


def test_mps_spec_and_describe() -> None:
    device = get_device("mps")
    assert device.name == "mps"
    assert get_device("mps:0") == device
    facts = device.describe()
    assert facts["kind"] == "mps" and facts["recommended_max_memory_bytes"] > 0


def test_device_time_batch_synchronizes_once(torch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    device = MpsDevice()
    a = torch.randn(512, 512, device="mps")
    loop = device.make_call_loop(torch.mm, (a, a))
    loop(3)
    device.synchronize()
    calls: list[object] = []
    real = torch.mps.synchronize

    def counting() -> None:
        calls.append(None)
        real()

    monkeypatch.setattr(torch.mps, "synchronize", counting)
    samples = device.device_time_samples(loop, 2, 6)
    assert samples is not None and len(samples) == 6
    assert len(calls) == 1
    assert all(s >= 0 for s in samples)


def test_measure_reports_device_time_and_latency_labelled(torch: Any) -> None:
    a = torch.randn(1024, 1024, device="mps")
    m = measure(torch.mm, a, a, device="mps", options=MeasureOptions.quick())
    assert m.device == "mps"
    assert m.device_time is not None
    assert m.device_time.timer == "mps_events" and "MPS events" in m.device_time.label
    assert m.latency.timer == "sync_clock" and "synchronised" in m.latency.label
    assert m.primary is m.device_time
    assert m.device_time.stats.median > 0 and m.latency.stats.median > 0


def test_mps_memory_fields_are_filled(torch: Any) -> None:
    def allocate() -> Any:
        return torch.ones(16 * 1024 * 1024, dtype=torch.float32, device="mps")  # 64 MB

    m = measure(allocate, device="mps", options=MeasureOptions.quick())
    memory = m.memory
    assert memory.device_peak_allocated_bytes is not None
    assert memory.device_peak_allocated_bytes >= 64 * 1024 * 1024
    assert memory.device_peak_reserved_bytes is not None
    assert memory.device_budget_bytes == torch.mps.recommended_max_memory()


def test_per_call_device_time_is_labelled_and_synchronizes_after_every_call(
    torch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = MpsDevice()
    a = torch.randn(512, 512, device="mps")
    loop = device.make_call_loop(torch.mm, (a, a))
    loop(3)
    device.synchronize()
    calls: list[object] = []
    real = torch.mps.synchronize

    def counting() -> None:
        calls.append(None)
        real()

    monkeypatch.setattr(torch.mps, "synchronize", counting)
    samples = device.per_call_device_time_samples(loop, 2, 3)
    assert samples is not None and len(samples) == 3
    assert len(calls) == 1 + 2 * 3
    monkeypatch.undo()
    m = measure(
        torch.mm, a, a, device="mps", options=MeasureOptions.quick(device_timing="per_call")
    )
    assert m.device_time is not None and m.device_time.timer == "mps_events_per_call"
    assert m.device_time.label == "device time, per call (MPS events)"
