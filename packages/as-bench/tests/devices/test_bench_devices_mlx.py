"""The MLX device: lazy arrays are evaluated inside the timed region; memory is tracked."""

from __future__ import annotations

from typing import Any

import pytest

from as_bench.devices import MlxDevice, get_device
from as_bench.engine import MeasureOptions, measure

pytestmark = pytest.mark.skipif(
    not MlxDevice.is_available(), reason=f"mlx is not usable here: {MlxDevice.unavailable_reason()}"
)


def _lazy_chain(a: Any, steps: int) -> Any:
    out = a
    for _ in range(steps):
        out = out @ a
    return out  # lazy: nothing is computed until it is evaluated


def test_mlx_is_available_and_described() -> None:
    device = get_device("mlx")
    assert isinstance(device, MlxDevice)
    assert device.name == "mlx"
    assert device.latency_timer == "mlx_eval_clock"
    facts = device.describe()
    assert facts["kind"] == "mlx" and facts["mlx"]


def test_the_call_loop_evaluates_outputs() -> None:
    import mlx.core as mx

    device = MlxDevice()
    produced: list[Any] = []

    def fn() -> Any:
        out = mx.ones((8, 8)) * 2
        produced.append(out)
        return out

    device.make_call_loop(fn)(1)
    # An evaluated array converts without computing; compare the value.
    assert float(produced[0].sum().item()) == 128.0


def test_lazy_matmul_chain_is_much_slower_measured_with_eval() -> None:
    import mlx.core as mx

    a = mx.random.normal((256, 256))
    mx.eval(a)
    options = MeasureOptions.quick(max_time_s=0.5)
    with_eval = measure(_lazy_chain, a, 8, device="mlx", options=options)
    graph_only = measure(_lazy_chain, a, 8, device="cpu", options=options)
    assert with_eval.device == "mlx"
    assert with_eval.latency.timer == "mlx_eval_clock"
    assert with_eval.device_time is None  # MLX has no event timer
    # Eight 256x256 matmuls take far longer than building their graph.
    assert with_eval.latency.stats.median > 5 * graph_only.latency.stats.median


def test_mlx_memory_fields_are_reported() -> None:
    import mlx.core as mx

    def allocate() -> Any:
        return mx.zeros((1024, 1024)) + 1.0  # 4 MB float32

    m = measure(allocate, device="mlx", options=MeasureOptions.quick())
    assert m.memory.device_peak_allocated_bytes is not None
    assert m.memory.device_peak_allocated_bytes >= 4 * 1024 * 1024
    assert m.memory.device_budget_bytes is not None and m.memory.device_budget_bytes > 0
    assert m.memory.host_peak_rss_bytes is not None
