"""Size-based rotation and many threads writing at once: no line lost, none torn."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from as_logging import configure

Reader = Callable[[Path], list[dict[str, Any]]]


def log_files(log_dir: Path) -> list[Path]:
    """The current file last, the oldest backup first: records in the order written."""
    current = log_dir / "as-toolkit.jsonl"
    backups = sorted(log_dir.glob("as-toolkit.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    return [*backups, current]


def test_rotation_keeps_exactly_backup_count_files(tmp_path: Path, read_records: Reader) -> None:
    max_bytes, backup_count, total = 2_000, 3, 1_000
    configure(
        console=False,
        log_dir=tmp_path,
        max_bytes=max_bytes,
        backup_count=backup_count,
        logger="t.rotate",
    )
    log = logging.getLogger("t.rotate")
    for seq in range(total):
        log.info("record %d", seq, extra={"seq": seq})

    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["as-toolkit.jsonl"] + [f"as-toolkit.jsonl.{n}" for n in (1, 2, 3)]
    seqs: list[int] = []
    for path in log_files(tmp_path):
        assert 0 < path.stat().st_size < max_bytes
        seqs += [record["extra"]["seq"] for record in read_records(path)]
    # The kept files hold an unbroken run of the newest records, in order.
    assert seqs == list(range(total - len(seqs), total))
    # ~300 bytes a record, 2000 a file: 1000 records rolled over far more than 3 times.
    assert total - len(seqs) > 10 * len(seqs)


def test_backup_count_zero_never_rolls_over(tmp_path: Path, read_records: Reader) -> None:
    configure(console=False, log_dir=tmp_path, max_bytes=500, backup_count=0, logger="t.norot")
    for seq in range(50):
        logging.getLogger("t.norot").info("record %d", seq)
    assert [p.name for p in tmp_path.iterdir()] == ["as-toolkit.jsonl"]
    assert len(read_records(tmp_path / "as-toolkit.jsonl")) == 50


def run_threads(log: logging.Logger, threads: int, per_thread: int) -> None:
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        start.wait()  # all threads log at the same time, not one after another
        for seq in range(per_thread):
            # Long, multi-line messages make a torn or interleaved line easy to see.
            log.info("worker %d record %d\n%s", worker, seq, "x" * 200, extra={"w": worker})

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def check_all_records(records: list[dict[str, Any]], threads: int, per_thread: int) -> None:
    assert len(records) == threads * per_thread
    seen = {(r["extra"]["w"], int(r["message"].split()[3])) for r in records}
    assert seen == {(w, seq) for w in range(threads) for seq in range(per_thread)}
    for record in records:
        assert record["message"].endswith("\n" + "x" * 200)
    # Each thread's records appear in the order that thread wrote them.
    for worker in range(threads):
        mine = [int(r["message"].split()[3]) for r in records if r["extra"]["w"] == worker]
        assert mine == list(range(per_thread))


def test_concurrent_threads_lose_no_line(tmp_path: Path, read_records: Reader) -> None:
    threads, per_thread = 8, 500
    result = configure(console=False, log_dir=tmp_path, logger="t.threads")
    run_threads(logging.getLogger("t.threads"), threads, per_thread)
    assert result.log_file is not None
    check_all_records(read_records(result.log_file), threads, per_thread)


def test_concurrent_threads_across_rollovers_lose_no_line(
    tmp_path: Path, read_records: Reader
) -> None:
    threads, per_thread = 8, 500
    # ~1.9 MB of records in 64 KiB files: about 30 rollovers while the threads race, and
    # enough backups to keep them all.
    configure(
        console=False,
        log_dir=tmp_path,
        max_bytes=64 * 1024,
        backup_count=100,
        logger="t.threads.rotate",
    )
    run_threads(logging.getLogger("t.threads.rotate"), threads, per_thread)
    files = log_files(tmp_path)
    assert len(files) > 20
    records = [record for path in files for record in read_records(path)]
    check_all_records(records, threads, per_thread)
