"""Several processes appending to one store at once lose nothing and leave no debris."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from as_bench.results import BenchmarkResult, ResultStore

WRITERS = 4
T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
PER_WRITER = 50


def _append_all(root: str, results: list[BenchmarkResult], go: Any) -> None:
    # Every writer waits for the same signal so that the appends really overlap.
    store = ResultStore(root)
    go.wait(timeout=60)
    for result in results:
        store.append(result)


def _make_this_module_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spawned children unpickle _append_all by importing this module under the name
    # pytest gave it (importlib mode: a dotted path from the rootdir). Put the folder
    # that name is relative to on sys.path; children inherit the parent's sys.path.
    depth = len(__name__.split("."))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[depth - 1]))


def test_four_processes_appending_at_once_lose_nothing(
    tmp_path: Path, make_result: Callable[..., BenchmarkResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_this_module_importable(monkeypatch)
    root = tmp_path / "store"
    # All in the same microsecond: file names must not rely on the time to be unique.
    at = {"started_at": T0, "finished_at": T0 + timedelta(seconds=1)}
    batches = [
        [make_result(w * PER_WRITER + i, **at) for i in range(PER_WRITER)] for w in range(WRITERS)
    ]
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = [ctx.Process(target=_append_all, args=(str(root), batch, go)) for batch in batches]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * WRITERS

    store = ResultStore(root)
    results, errors = store.load_report()
    assert errors == []
    assert len(results) == WRITERS * PER_WRITER
    expected = {r.id: r for batch in batches for r in batch}
    assert {r.id: r for r in results} == expected
    assert [r.id for r in results] == sorted(expected)  # same start: ordered by id
    # Only the result files remain: no temporary file survived a writer.
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in store.paths())
    assert len(list(root.iterdir())) == WRITERS * PER_WRITER
