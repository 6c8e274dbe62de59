"""The event-pair sampling CUDA and MPS share, on events that read a call counter."""

from __future__ import annotations

from as_bench.devices._events import back_to_back_times, per_call_times


class _Clock:
    def __init__(self) -> None:
        self.calls = 0
        self.syncs = 0

    def loop(self, n: int) -> None:
        self.calls += n

    def synchronize(self) -> None:
        self.syncs += 1


class _Event:
    """Records how many calls had run; 1 ms of device time per call."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.at = 0

    def record(self) -> None:
        self.at = self.clock.calls

    def elapsed_time(self, end: _Event) -> float:
        return float(end.at - self.at)


def test_back_to_back_times_each_sample_and_synchronizes_once() -> None:
    clock = _Clock()
    pairs = [(_Event(clock), _Event(clock)) for _ in range(5)]
    assert back_to_back_times(pairs, clock.loop, 4, clock.synchronize) == [0.004] * 5
    assert (clock.calls, clock.syncs) == (20, 1)


def test_per_call_times_each_call_and_synchronizes_after_every_one() -> None:
    clock = _Clock()
    pair = (_Event(clock), _Event(clock))
    assert per_call_times(pair, clock.loop, 3, 2, clock.synchronize) == [0.003] * 2
    assert (clock.calls, clock.syncs) == (6, 1 + 6)
