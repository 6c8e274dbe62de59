"""The engine says when other processes competed for the CPUs during a measurement.

The rule (how many cores others kept busy, against what threshold, over how long) is
tested on fake time and fake CPU accounting; one ``timing`` test spins real neighbours.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from as_bench.devices import CpuTimes
from as_bench.engine import MeasureOptions, measure
from as_bench.engine._contention import ContentionMeter
from as_bench.testing import FakeClock, FakeDevice

_SPIN = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass\n"


def noop() -> None:
    """The measured function of fake-time tests."""


def _meter(clock: FakeClock, readings: list[CpuTimes | None]) -> ContentionMeter:
    """A meter on ``clock`` whose CPU accounting reads ``readings``, one per call."""
    return ContentionMeter(clock=clock, cpu_times=iter(readings).__next__)


def _busy(m_warnings: list[str]) -> list[str]:
    return [w for w in m_warnings if w.startswith("other processes kept")]


def test_busy_neighbours_are_reported_with_how_many_cores_they_took() -> None:
    device = FakeDevice(1e-3, others_cores=1.5, cpu_count=2)
    m = measure(noop, device=device, options=MeasureOptions.quick(min_time_s=0.1))
    busy = _busy(m.warnings)
    assert busy, m.warnings
    assert busy[0].startswith("other processes kept 1.5 of 2 CPUs busy while measuring")


def test_a_quiet_machine_gets_no_warning() -> None:
    m = measure(noop, device=FakeDevice(1e-3), options=MeasureOptions.quick(min_time_s=0.1))
    assert not _busy(m.warnings)


@pytest.mark.parametrize(
    ("others", "cpus", "warned"),
    [
        (0.29, 1, False),  # under 0.3 of a core: a daemon waking now and then
        (0.31, 1, True),
        (0.39, 2, False),  # under 20% of the machine
        (0.41, 2, True),
        (1.59, 8, False),
        (1.61, 8, True),
    ],
)
def test_the_warning_needs_a_third_of_a_core_and_a_fifth_of_the_machine(
    others: float, cpus: int, warned: bool
) -> None:
    clock = FakeClock()
    meter = _meter(clock, [CpuTimes(0.0, 0.0, cpus), CpuTimes(1.0 + others, 1.0, cpus)])
    meter.start()
    clock.advance(1.0)  # one second in which we used one core and others `others`
    assert (meter.warning() is not None) is warned


def test_meter_says_nothing_for_too_short_an_interval() -> None:
    # The kernel accounts CPU time in ticks: over a few ms the figure would be noise.
    clock = FakeClock()
    meter = _meter(clock, [CpuTimes(0.0, 0.0, 1), CpuTimes(0.05, 0.0, 1)])
    meter.start()
    clock.advance(0.05)
    assert meter.others_cores() is None
    assert meter.warning() is None
    clock.advance(0.01)
    assert meter.others_cores() == pytest.approx(0.05 / 0.06)


def test_meter_says_nothing_when_the_accounting_cannot_be_read() -> None:
    clock = FakeClock()
    unreadable_at_start = _meter(clock, [None])
    unreadable_at_start.start()
    clock.advance(1.0)
    assert unreadable_at_start.warning() is None
    unreadable_at_end = _meter(clock, [CpuTimes(0.0, 0.0, 1), None])
    unreadable_at_end.start()
    clock.advance(1.0)
    assert unreadable_at_end.warning() is None


def test_the_default_meter_reads_the_kernels_accounting() -> None:
    meter = ContentionMeter()
    meter.start()
    assert meter.others_cores() is None  # started a moment ago: too short to say
    times = FakeDevice().cpu_times()
    assert times.cpu_count == 2  # the fake's, not the machine's


@pytest.mark.timing
def test_spinning_neighbours_are_reported() -> None:
    # One spinning process per CPU: whatever else the machine does, others use >= 1 core.
    count = psutil.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(s=10)]) for _ in range(count)]
    try:
        # Wait until every neighbour is spinning (has used CPU), not for a fixed time.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not all(
            psutil.Process(hog.pid).cpu_times().user > 0.05 for hog in hogs
        ):
            time.sleep(0.01)
        m = measure(_busy_wait_1ms, options=MeasureOptions.quick(min_time_s=0.5, max_time_s=1))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    busy = _busy(m.warnings)
    assert busy, m.warnings
    assert f"of {count} CPUs busy while measuring" in busy[0]


def _busy_wait_1ms() -> None:
    end = time.perf_counter_ns() + 1_000_000
    while time.perf_counter_ns() < end:
        pass
