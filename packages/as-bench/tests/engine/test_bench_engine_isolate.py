"""isolate=True: a fresh spawned process per measurement, results back as JSON.

What a child sends back and how failures read does not depend on timing; the times a
child measures, and the timeout that kills a hung child, are ``timing`` tests.
"""

from __future__ import annotations

import multiprocessing
import operator
import os
import sys
import time
import types
from typing import Any

import numpy as np
import pytest

from as_bench.devices import CpuDevice
from as_bench.engine import MeasureOptions, measure
from as_bench.engine._isolate import _receive
from as_bench.exceptions import DeviceUnavailableError, MeasurementError
from as_bench.testing import FakeClock, FakeDevice


def test_a_spawned_child_returns_a_measurement_with_threads_fixed() -> None:
    before = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    m = measure(operator.add, 1, 2, options=MeasureOptions.quick(isolate=True, threads=1))
    assert m.isolated
    assert m.device == "cpu"
    assert m.latency.stats.n >= 2
    assert m.threads["requested"] == 1
    assert m.threads["OMP_NUM_THREADS"] == "1"
    assert m.threads["MKL_NUM_THREADS"] == "1"
    assert not any("not applied" in w for w in m.warnings)
    # The parent's environment is left as it was.
    assert {k: os.environ.get(k) for k in before} == before
    assert m.memory.host_peak_rss_bytes is not None and m.memory.host_peak_rss_bytes > 0


@pytest.mark.timing
def test_an_isolated_child_measures_real_time() -> None:
    m = measure(time.sleep, 0.001, options=MeasureOptions.quick(isolate=True))
    assert m.isolated
    assert 1e-3 <= m.latency.stats.median < 0.02  # time.sleep(0.001) sleeps at least 1 ms


def test_the_childs_peak_rss_covers_its_allocations() -> None:
    m = measure(np.ones, 25_000_000, options=MeasureOptions.quick(isolate=True))
    assert m.isolated
    assert m.memory.host_peak_rss_bytes is not None
    assert m.memory.host_peak_rss_bytes >= 200_000_000


def test_an_unpicklable_function_is_a_clear_error() -> None:
    with pytest.raises(MeasurementError, match="must be picklable") as info:
        measure(lambda: None, options=MeasureOptions.quick(isolate=True))
    assert "module level" in str(info.value)


def test_a_function_the_child_cannot_import_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module that exists in this process only: pickle finds the function by reference
    # here, the fresh child cannot import it (like a function in a script run as a file).
    module = types.ModuleType("as_bench_tests_parent_only_module")

    def parent_only() -> None:
        pass

    parent_only.__module__ = module.__name__
    parent_only.__qualname__ = "parent_only"
    module.parent_only = parent_only  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(MeasurementError, match="could not load the function") as info:
        measure(parent_only, options=MeasureOptions.quick(isolate=True))
    assert "as_bench_tests_parent_only_module" in str(info.value)


def test_a_child_that_exits_gives_its_exit_code() -> None:
    with pytest.raises(MeasurementError, match="exited with code 3"):
        measure(os._exit, 3, options=MeasureOptions.quick(isolate=True))


def test_an_exception_in_the_child_comes_back_with_its_traceback() -> None:
    with pytest.raises(MeasurementError, match="ZeroDivisionError") as info:
        measure(operator.truediv, 1, 0, options=MeasureOptions.quick(isolate=True))
    assert "child traceback" in str(info.value)


class _SilentChild:
    """A child's pipe that never answers, and the child's process handle."""

    def __init__(self) -> None:
        self.waited: list[float | None] = []
        self.killed = False
        self.joined = False

    def poll(self, timeout: float | None) -> bool:
        self.waited.append(timeout)
        return False

    def kill(self) -> None:
        self.killed = True

    def join(self, timeout: float | None = None) -> None:
        self.joined = True


def test_a_child_that_does_not_answer_in_time_is_killed() -> None:
    child = _SilentChild()
    conn: Any = child
    with pytest.raises(MeasurementError, match=r"timed out after 2\.5 s; the child was killed"):
        _receive(conn, child, 2.5)
    assert child.waited == [2.5]  # waited exactly isolate_timeout_s, once
    assert child.killed and child.joined


@pytest.mark.timing
def test_a_child_that_runs_too_long_is_killed() -> None:
    options = MeasureOptions.quick(isolate=True, isolate_timeout_s=2.0)
    with pytest.raises(MeasurementError, match="timed out after 2 s"):
        measure(time.sleep, 30, options=options)
    assert not multiprocessing.active_children()  # killed and reaped, not left sleeping


def test_a_device_with_its_own_clock_is_refused_before_spawning() -> None:
    options = MeasureOptions.quick(isolate=True)
    for device in (FakeDevice(1e-3), CpuDevice(clock=FakeClock())):
        with pytest.raises(MeasurementError, match="own clock cannot go with it"):
            measure(operator.add, 1, 2, device=device, options=options)
    assert not multiprocessing.active_children()


def test_a_bad_device_fails_before_spawning() -> None:
    with pytest.raises(DeviceUnavailableError, match="valid forms"):
        measure(time.sleep, 0.001, device="tpu", options=MeasureOptions.quick(isolate=True))
