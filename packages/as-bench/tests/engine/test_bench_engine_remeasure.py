"""remeasure_noisy: a noisy measurement is taken again (fresh processes, more samples).

The noise is programmed on fake time, so which attempts are noisy is exact; the tests
that really spawn children make every attempt count as noisy (``noise_rel_iqr`` tiny)
rather than rely on the machine being busy.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable

import pytest

from as_bench.engine import MeasureOptions, measure
from as_bench.testing import FakeClock, FakeDevice


def _busy_cost(seed: int, share: float = 0.45) -> Callable[[int], float]:
    """A call of 1 ms of which ``share`` waited for a core (2 to 6 times as long)."""
    rng = random.Random(seed)

    def cost(_: int) -> float:
        body = 1e-3 * rng.lognormvariate(0.0, 0.01)
        return body * rng.uniform(2.0, 6.0) if rng.random() < share else body

    return cost


def test_a_quiet_measurement_is_taken_once() -> None:
    device = FakeDevice(cost_s=1e-3)
    m = measure(lambda: None, device=device, options=MeasureOptions.quick(remeasure_noisy=2))
    assert m.attempts == 1
    assert not any("re-measured" in w for w in m.warnings)


def test_without_the_option_a_noisy_measurement_is_kept_as_it_is() -> None:
    device = FakeDevice(cost_s=_busy_cost(1))
    m = measure(lambda: None, device=device, options=MeasureOptions.quick())
    assert m.attempts == 1 and m.latency.stats.relative_iqr >= 0.10


def test_noisy_attempts_are_pooled_with_every_sample_kept() -> None:
    opts = MeasureOptions.quick(remeasure_noisy=2)
    single = measure(
        lambda: None,
        device=FakeDevice(cost_s=_busy_cost(1)),
        options=opts.model_copy(update={"remeasure_noisy": 0}),
    )
    m = measure(lambda: None, device=FakeDevice(cost_s=_busy_cost(1)), options=opts)
    assert m.attempts == 3
    # The first attempt is the same as a single measurement's; two more were added.
    assert m.latency.samples_s[: single.latency.stats.n] == single.latency.samples_s
    assert m.latency.stats.n > single.latency.stats.n
    assert m.latency.stats.n == len(m.latency.samples_s)
    note = m.warnings[-1]
    assert note.startswith("re-measured: the first attempt's IQR was ")
    # A fake clock cannot go to a child: every attempt ran in this process.
    assert "all 3 attempts (0 in fresh processes) were noisy" in note
    assert note.endswith("their samples are pooled")
    assert m.total_seconds > single.total_seconds


def test_the_first_quiet_attempt_is_the_result() -> None:
    # How long the first (busy) attempt lasts on fake time: the same measurement alone.
    dry = FakeClock(step_ns=50)
    measure(
        lambda: None,
        device=FakeDevice(cost_s=_busy_cost(2), clock=dry),
        options=MeasureOptions.quick(),
    )
    clock = FakeClock(step_ns=50)
    noisy = _busy_cost(2)
    # Busy for the first attempt, quiet afterwards.
    device = FakeDevice(
        cost_s=lambda i: noisy(i) if clock.now_ns < dry.now_ns else 1e-3,
        clock=clock,
    )
    m = measure(lambda: None, device=device, options=MeasureOptions.quick(remeasure_noisy=2))
    assert m.attempts == 2
    assert m.latency.stats.relative_iqr < 0.01
    assert m.latency.stats.median == pytest.approx(1e-3, rel=1e-3)
    assert "attempt 2, in this process, was quiet" in m.warnings[-1]
    assert "1 noisy attempt(s) dropped" in m.warnings[-1]


@pytest.mark.slow
def test_a_picklable_function_is_re_measured_in_fresh_processes() -> None:
    # Every attempt counts as noisy, so both re-measurements happen, in children.
    opts = MeasureOptions.quick(remeasure_noisy=2, noise_rel_iqr=1e-12)
    m = measure(operator.add, 1, 2, options=opts)
    assert m.attempts == 3
    assert "all 3 attempts (2 in fresh processes) were noisy" in m.warnings[-1]
    assert not m.isolated  # the first attempt ran here


def test_a_function_no_child_can_load_is_re_measured_here() -> None:
    opts = MeasureOptions.quick(remeasure_noisy=1, noise_rel_iqr=1e-12)
    m = measure(lambda: sum(range(100)), options=opts)
    assert m.attempts == 2
    assert "all 2 attempts (0 in fresh processes) were noisy" in m.warnings[-1]


def test_the_option_is_bounded() -> None:
    with pytest.raises(ValueError, match="remeasure_noisy"):
        MeasureOptions(remeasure_noisy=-1)


def test_processes_pools_that_many_measurements() -> None:
    opts = MeasureOptions.quick(processes=3)
    single = measure(lambda: None, device=FakeDevice(cost_s=1e-3), options=MeasureOptions.quick())
    m = measure(lambda: None, device=FakeDevice(cost_s=1e-3), options=opts)
    assert m.attempts == 3
    assert m.latency.stats.n > single.latency.stats.n
    assert (
        m.warnings[-1]
        == "measured 3 times (0 in fresh processes) and pooled (MeasureOptions.processes)"
    )


@pytest.mark.slow
def test_processes_go_to_fresh_processes_when_they_can() -> None:
    m = measure(operator.add, 1, 2, options=MeasureOptions.quick(processes=2))
    assert m.attempts == 2
    assert "measured 2 times (1 in fresh processes) and pooled" in m.warnings[-1]
