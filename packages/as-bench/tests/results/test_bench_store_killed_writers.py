"""Writers killed mid-append (SIGKILL) leave every complete result readable and no debris."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from as_bench.results import BenchmarkResult, ResultStore
from as_core.fs import TEMP_SUFFIX

KILLS = 20

# Appends copies of the template result (new id each) until killed; prints each id once
# its append has returned.
_WRITER = """
import sys
from as_bench.results import BenchmarkResult, ResultStore

store = ResultStore(sys.argv[1])
template = BenchmarkResult.model_validate_json(open(sys.argv[2], "rb").read())
prefix = sys.argv[3]
index = 0
while True:
    result = template.model_copy(update={"id": f"{prefix}{index:08d}"})
    store.append(result)
    print(result.id, flush=True)
    index += 1
"""


def _temporary_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX))


def _kill_a_writer(root: Path, template: Path, prefix: str, rng: random.Random) -> list[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), str(template), prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    try:
        first = writer.stdout.readline().strip()  # it is appending now
        assert first, "the writer stopped before its first append"
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    return [first, *(line.strip() for line in rest.splitlines() if line.strip())]


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_writers_killed_at_random_moments_leave_no_temporary_files(
    tmp_path: Path, make_result: Callable[..., BenchmarkResult]
) -> None:
    root = tmp_path / "store"
    ResultStore(root)
    # A large result widens the moment between creating the temporary file and renaming it.
    template = tmp_path / "template.json"
    big = make_result(0, params={"pad": [float(i) for i in range(50_000)]})
    template.write_text(big.model_dump_json())
    rng = random.Random(20251204)
    appended: list[str] = []
    for kill in range(KILLS):
        appended += _kill_a_writer(root, template, f"k{kill:02d}x", rng)

    store = ResultStore(root)  # opening it removes what the killed writers left

    assert _temporary_files(root) == []
    results, errors = store.load_report()
    assert errors == []
    stored = {r.id for r in results}
    # Every append that returned is there, whole; at most one more per kill (renamed just
    # before the kill, its id never printed).
    assert set(appended) <= stored
    assert len(stored) <= len(appended) + KILLS
    assert all(r.params == big.params for r in results)
    assert len(store.paths()) == len(results)


def test_a_finished_append_leaves_nothing_and_old_leftovers_go_after_ten_minutes(
    tmp_path: Path, make_result: Callable[..., BenchmarkResult]
) -> None:
    store = ResultStore(tmp_path)
    store.append(make_result(1))
    assert _temporary_files(tmp_path) == []
    # What earlier versions left beside the results: its writer cannot be told, so it
    # stays while it could still be in flight, and goes once it is ten minutes old.
    fresh = tmp_path / f".{ResultStore.file_name(make_result(2))}.0123{TEMP_SUFFIX}"
    old = tmp_path / f".{ResultStore.file_name(make_result(3))}.4567{TEMP_SUFFIX}"
    for path in (fresh, old):
        path.write_text('{"schema_ver')
    stale = time.time() - 3600
    os.utime(old, (stale, stale))

    reopened = ResultStore(tmp_path)
    assert _temporary_files(tmp_path) == [fresh]
    assert [r.id for r in reopened.load(on_error="raise")] == [make_result(1).id]
