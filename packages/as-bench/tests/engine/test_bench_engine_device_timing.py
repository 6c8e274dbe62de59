"""Device time back-to-back (the default) or per call, checked with a fake GPU.

:class:`~as_bench.testing.FakeEventDevice` with ``launch_s`` models a launch-bound call:
a call on an idle device waits ``launch_s`` for its first launch. Back-to-back device
time hides that wait behind the previous call (once per batch), per-call device time and
latency pay it on every call, as a real GPU does (an H200 read a batch-1 MLP 23% apart).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from as_bench.engine import MeasureOptions, measure
from as_bench.measurement import (
    DEVICE_TIME_HEADINGS,
    device_time_cell_suffix,
    device_time_heading,
    device_timing_of,
)
from as_bench.results import BenchmarkResult
from as_bench.testing import FakeDevice, FakeEventDevice, make_measurement, make_result, make_series


def noop() -> None:
    """The measured function: its cost is the fake device's."""


def test_back_to_back_is_the_default_and_its_label_says_so() -> None:
    assert MeasureOptions().device_timing == "batched"
    device = FakeEventDevice(2e-4, launch_s=2e-5)
    m = measure(noop, device=device, options=MeasureOptions.quick())
    assert m.device_time is not None
    assert m.device_time.timer == "cuda_events"
    assert m.device_time.label == "device time, back-to-back (fake events)"
    assert {kind for kind, _ in device.requests} == {"latency", "device"}
    assert device_timing_of(m.device_time) == "batched"


def test_per_call_device_time_pays_every_calls_launch_and_back_to_back_does_not() -> None:
    cost, launch = 1e-5, 3e-6  # launch-bound: each idle start adds 30%
    options = MeasureOptions.quick(inner_loops=100)
    batched = measure(noop, device=FakeEventDevice(cost, launch_s=launch), options=options)
    device = FakeEventDevice(cost, launch_s=launch)
    per_call = measure(
        noop, device=device, options=options.model_copy(update={"device_timing": "per_call"})
    )
    assert per_call.device_time is not None and batched.device_time is not None
    assert per_call.device_time.timer == "cuda_events_per_call"
    assert per_call.device_time.label == "device time, per call (fake events)"
    assert device_timing_of(per_call.device_time) == "per_call"
    assert {kind for kind, _ in device.requests} == {"latency", "device_per_call"}
    # Per call: every call starts idle and pays the launch; exact on fake time.
    assert per_call.device_time.stats.median == pytest.approx(cost + launch, rel=1e-9)
    # Back to back: one idle start per batch of samples, spread over its calls.
    assert batched.device_time.stats.median < cost + launch / 100 + 1e-12
    assert batched.device_time.stats.median >= cost
    # Latency (synchronised calls) pays the launch in both modes.
    assert per_call.latency.stats.median >= cost + launch
    assert batched.latency.stats.median == pytest.approx(per_call.latency.stats.median, rel=1e-6)


def test_per_call_samples_synchronise_after_every_call() -> None:
    device = FakeEventDevice(1e-4, launch_s=1e-5)
    loop = device.make_call_loop(noop)
    before = device.syncs
    samples = device.per_call_device_time_samples(loop, 4, 3)
    assert samples == pytest.approx([4 * 1.1e-4] * 3, rel=1e-9)
    assert device.syncs - before == 1 + 4 * 3  # one first, then one per call
    assert device.requests[-1] == ("device_per_call", 3)


def test_back_to_back_samples_synchronise_once_per_batch() -> None:
    device = FakeEventDevice(1e-4, launch_s=1e-5)
    loop = device.make_call_loop(noop)
    device.synchronize()
    before = device.syncs
    samples = device.device_time_samples(loop, 4, 3)
    assert samples == pytest.approx([4e-4 + 1e-5, 4e-4, 4e-4], rel=1e-9)  # one idle start
    assert device.syncs - before == 1


def test_a_device_without_events_has_no_device_time_in_either_mode() -> None:
    for timing in ("batched", "per_call"):
        options = MeasureOptions.quick(device_timing=timing)
        m = measure(noop, device=FakeDevice(1e-4), options=options)
        assert m.device_time is None
        assert FakeDevice(1e-4).device_series(timing) is None


def test_device_series_names_the_timer_and_label_of_each_mode() -> None:
    device = FakeEventDevice(1e-4)
    assert device.device_series() == ("cuda_events", "device time, back-to-back (fake events)")
    assert device.device_series("per_call") == (
        "cuda_events_per_call",
        "device time, per call (fake events)",
    )


def test_an_unknown_device_timing_is_refused() -> None:
    with pytest.raises(ValidationError, match="device_timing"):
        MeasureOptions(device_timing="per-kernel")  # type: ignore[arg-type]


def test_headings_say_what_the_device_time_means() -> None:
    batched = make_series([1e-3, 1e-3], label="device time, back-to-back", timer="cuda_events")
    per_call = make_series([1e-3, 1e-3], label="device time, per call", timer="mps_events_per_call")
    latency = make_series([1e-3, 1e-3], timer="sync_clock")
    assert device_timing_of(latency) is None and device_timing_of(None) is None
    assert device_time_heading([]) == DEVICE_TIME_HEADINGS["batched"]
    assert device_time_heading([None, batched]) == "device time (back-to-back)"
    assert device_time_heading([per_call, None]) == "device time (per call)"
    mixed = device_time_heading([batched, per_call])
    assert mixed == "device time"
    assert device_time_cell_suffix(per_call, mixed) == " (per call)"
    assert device_time_cell_suffix(batched, mixed) == " (back-to-back)"
    assert device_time_cell_suffix(per_call, "device time (per call)") == ""
    assert device_time_cell_suffix(None, mixed) == ""


def test_a_per_call_series_survives_a_result_file_round_trip() -> None:
    m = make_measurement([1e-3, 1.1e-3], device_samples_s=[9e-4, 9.5e-4], device="cuda:0")
    assert m.device_time is not None
    series = m.device_time.model_copy(
        update={"timer": "cuda_events_per_call", "label": "device time, per call (CUDA events)"}
    )
    result = make_result(
        "mlp/torch/cuda:0/bs1",
        measurement=m.model_copy(update={"device_time": series}),
        device="cuda:0",
    )
    again = BenchmarkResult.model_validate_json(result.model_dump_json())
    assert again.measurement.device_time is not None
    assert again.measurement.device_time.timer == "cuda_events_per_call"


def test_comparisons_never_pit_back_to_back_against_per_call_device_time() -> None:
    from as_bench.compare import compare_results

    def result(timer: str, device_median_s: float) -> BenchmarkResult:
        m = make_measurement(
            [1e-3 * (1 + i / 1000) for i in range(50)],
            device_samples_s=[device_median_s * (1 + i / 1000) for i in range(50)],
            device="cuda:0",
        )
        assert m.device_time is not None
        series = m.device_time.model_copy(update={"timer": timer})
        return make_result(
            "mlp/torch/cuda:0/bs1",
            measurement=m.model_copy(update={"device_time": series}),
            device="cuda:0",
        )

    # Per call reads 23% higher on a launch-bound call: not a regression.
    mixed = compare_results(
        [result("cuda_events", 8e-4)], [result("cuda_events_per_call", 9.84e-4)]
    )
    (item,) = mixed.items
    assert item.timer == "wall clock (perf_counter_ns)"  # the latency series of the doubles
    assert item.ratio == pytest.approx(1.0)
    assert any("back-to-back vs per call" in w for w in mixed.environment_warnings)
    same = compare_results([result("cuda_events", 8e-4)], [result("cuda_events", 9.84e-4)])
    assert same.items[0].timer.startswith("device time")
