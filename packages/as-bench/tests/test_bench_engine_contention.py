"""The engine says when other processes competed for the CPUs during a measurement."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from as_bench.engine import MeasureOptions, measure
from as_bench.engine._contention import ContentionMeter

_SPIN = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass\n"


def _busy_wait_1ms() -> None:
    end = time.perf_counter_ns() + 1_000_000
    while time.perf_counter_ns() < end:
        pass


def test_spinning_neighbours_are_reported() -> None:
    # One spinning process per CPU: whatever else the machine does, others use >= 1 core.
    count = psutil.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(s=6)]) for _ in range(count)]
    try:
        time.sleep(0.3)  # let them start
        m = measure(_busy_wait_1ms, options=MeasureOptions.quick(min_time_s=0.5, max_time_s=1))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    busy = [w for w in m.warnings if w.startswith("other processes kept")]
    assert busy, m.warnings
    assert f"of {count} CPUs busy while measuring" in busy[0]


def test_meter_says_nothing_for_too_short_an_interval() -> None:
    meter = ContentionMeter()
    meter.start()
    # The kernel accounts CPU time in ticks: over a few ms the figure would be noise.
    assert meter.others_cores() is None
    assert meter.warning() is None
