"""What keeps the monitor's step cheap: buffered metrics, sampled memory, a throttled bar."""

from __future__ import annotations

import io
import os
from pathlib import Path

import psutil
import pytest
from torch import nn

from as_bench.testing import FakeClock
from as_optimize.training import Monitor, MonitorSettings, read_metrics
from as_optimize.training._metrics import MetricsWriter
from as_optimize.training._progress import ProgressReporter
from as_optimize.training._rss import RssReader


def _settings(**sections: dict[str, object]) -> MonitorSettings:
    base: dict[str, dict[str, object]] = {
        "checkpoint": {"every_steps": 0, "at_start": False},
        "progress": {"mode": "off"},
    }
    base.update(sections)
    return MonitorSettings.model_validate(base)


def _lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_metrics_lines_reach_the_file_every_flush_interval_and_at_close(tmp_path: Path) -> None:
    clock = FakeClock()
    monitor = Monitor(
        tmp_path,
        model=nn.Linear(2, 2),
        settings=_settings(metrics={"flush_every_s": 1.0}),
        clock=clock,
    )
    with monitor:
        for _ in range(5):
            clock.advance(0.1)
            monitor.step(loss=1.0)
        assert _lines(tmp_path) == 0  # kept in memory: no write per step
        clock.advance(1.0)
        monitor.step(loss=1.0)
        assert _lines(tmp_path) == 6  # a second passed: all of them written at once
        clock.advance(0.1)
        monitor.step(loss=1.0)
        assert _lines(tmp_path) == 6
    assert _lines(tmp_path) == 7
    assert read_metrics(tmp_path)["step"].to_list() == list(range(1, 8))


def test_a_full_buffer_is_written_and_rotation_still_applies(tmp_path: Path) -> None:
    writer = MetricsWriter(
        tmp_path / "metrics.jsonl", max_bytes=300, backup_count=5, buffer_records=4
    )
    for step in range(1, 11):
        writer.write_step((step, 0, 0.5, 1.0, 2.0, (0.1, 0.01), 0.01, 100.0, None))
    writer.close()
    frame = read_metrics(tmp_path)
    assert frame["step"].to_list() == list(range(1, 11))
    assert frame["lr_1"].to_list() == [0.01] * 10
    assert all(p.stat().st_size <= 300 for p in tmp_path.iterdir())
    assert len(list(tmp_path.iterdir())) > 2


def test_resident_memory_is_read_from_proc_as_psutil_reads_it() -> None:
    reader = RssReader()
    try:
        rss = reader()
        assert rss is not None
        assert abs(rss - psutil.Process().memory_info().rss) < 64 * 2**20
    finally:
        reader.close()
    calls: list[int] = []

    def counted() -> int:
        calls.append(1)
        return 123

    fallback = RssReader(fallback=counted)
    fallback.close()  # as on a system without /proc: the fallback answers
    assert fallback() == 123 and calls == [1]
    fallback.close()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_an_unreadable_statm_falls_back_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = RssReader(fallback=lambda: 7)
    real = os.pread

    def broken(fd: int, size: int, offset: int) -> bytes:
        raise OSError("gone")

    monkeypatch.setattr(os, "pread", broken)
    assert reader() == 7
    monkeypatch.setattr(os, "pread", real)
    assert reader() == 7  # closed for good


def test_the_bar_is_told_at_most_four_times_a_second() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    reporter = ProgressReporter("bar", every_steps=10, clock=clock, stream=stream)
    reporter.start(0, 1000)
    updates: list[int] = []
    real_update = reporter._bar.update

    def counting(task: object, **fields: object) -> None:
        updates.append(int(str(fields.get("completed", -1))))
        real_update(task, **fields)

    reporter._bar.update = counting
    for step in range(1, 101):
        clock.advance(0.01)  # 100 steps a second
        reporter.update(step, {"loss": 0.5, "grad_norm": 1.0, "lr": 0.1})
    assert len(updates) == 4  # steps 1, 26, 51, 76
    reporter.finish(100)
    assert updates[-1] == 100
    reporter.close()
    reporter.close()
