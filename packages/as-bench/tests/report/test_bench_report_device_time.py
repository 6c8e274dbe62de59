"""The report's device-time column says how the device time was taken."""

from __future__ import annotations

from as_bench.report._data import _workload_tables
from as_bench.results import BenchmarkResult
from as_bench.testing import make_measurement, make_result


def _result(device: str, timer: str | None) -> BenchmarkResult:
    m = make_measurement([1e-3, 1.2e-3], device_samples_s=[8e-4, 9e-4], device=device)
    if timer is None:
        m = m.model_copy(update={"device_time": None})
    else:
        assert m.device_time is not None
        m = m.model_copy(update={"device_time": m.device_time.model_copy(update={"timer": timer})})
    return make_result(f"mlp/torch/{device}/bs1", measurement=m, backend="torch", device=device)


def test_the_heading_names_back_to_back_or_per_call_and_mixed_cells_say_which() -> None:
    cpu, batched = _result("cpu", None), _result("cuda:0", "cuda_events")
    per_call = _result("cuda:1", "cuda_events_per_call")
    (table,) = _workload_tables([cpu, batched], [], several_machines=False).values()
    assert table.headers[4] == "device time (back-to-back)"
    (table,) = _workload_tables([cpu, per_call], [], several_machines=False).values()
    assert table.headers[4] == "device time (per call)"
    (table,) = _workload_tables([batched, per_call], [], several_machines=False).values()
    assert table.headers[4] == "device time"
    assert table.rows[0][4].endswith(" (back-to-back)")
    assert table.rows[1][4].endswith(" (per call)")
