"""bind(): nesting, threads, asyncio tasks, and the fields on every record."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from as_logging import ContextFilter, JsonFormatter, bind, bound_context, configure

Reader = Callable[[Path], list[dict[str, Any]]]

# Free-threaded CPython 3.14 lets new threads inherit the starter's context by default.
THREADS_INHERIT = bool(getattr(sys.flags, "thread_inherit_context", False))


def test_nested_binds_merge_and_restore_on_exit() -> None:
    assert bound_context() == {}
    with bind(run="r1", step=1) as outer:
        assert dict(outer) == {"run": "r1", "step": 1}
        with bind(step=2, model="m") as inner:
            assert dict(inner) == {"run": "r1", "step": 2, "model": "m"}
            assert bound_context() == {"run": "r1", "step": 2, "model": "m"}
        assert bound_context() == {"run": "r1", "step": 1}
    assert bound_context() == {}


def test_bind_restores_when_the_block_raises() -> None:
    with bind(run="r1"):
        with pytest.raises(RuntimeError), bind(run="r2"):
            raise RuntimeError
        assert bound_context() == {"run": "r1"}
    assert bound_context() == {}


def test_bound_context_is_a_copy_and_the_yielded_mapping_read_only() -> None:
    with bind(a=1) as fields:
        copy = bound_context()
        copy["b"] = 2
        assert bound_context() == {"a": 1}
        with pytest.raises(TypeError):
            fields["b"] = 2  # type: ignore[index]


def test_records_carry_the_fields_bound_when_logged(tmp_path: Path, read_records: Reader) -> None:
    configure(console=False, log_dir=tmp_path, logger="t.ctx")
    log = logging.getLogger("t.ctx")
    with bind(run="r1"):
        log.info("one")
        with bind(step=2):
            log.info("two")
    log.info("three")
    records = read_records(tmp_path / "as-toolkit.jsonl")
    assert [r["context"] for r in records] == [{"run": "r1"}, {"run": "r1", "step": 2}, {}]


def test_context_filter_captures_fields_in_the_logging_thread() -> None:
    # A record formatted later, on another thread (as with a QueueListener), keeps the
    # fields that were bound where it was logged.
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    with bind(run="r1"):
        assert ContextFilter().filter(record) is True
    formatted: list[str] = []
    thread = threading.Thread(target=lambda: formatted.append(JsonFormatter().format(record)))
    thread.start()
    thread.join()
    assert '"context": {"run": "r1"}' in formatted[0]


@pytest.mark.skipif(THREADS_INHERIT, reason="this build lets threads inherit the context")
def test_a_new_thread_starts_from_an_empty_context() -> None:
    seen: list[dict[str, object]] = []
    with bind(run="r1"):
        thread = threading.Thread(target=lambda: seen.append(bound_context()))
        thread.start()
        thread.join()
    assert seen == [{}]


def test_a_thread_run_in_a_copied_context_sees_the_fields() -> None:
    seen: list[dict[str, object]] = []
    with bind(run="r1"):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(lambda: seen.append(bound_context()),))
        thread.start()
        thread.join()
    assert seen == [{"run": "r1"}]


def test_threads_binding_at_once_each_log_their_own_fields(
    tmp_path: Path, read_records: Reader
) -> None:
    configure(console=False, log_dir=tmp_path, logger="t.ctx.threads")
    log = logging.getLogger("t.ctx.threads")
    threads, per_thread = 8, 100
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        with bind(worker=worker):
            start.wait()  # every thread holds its binding while the others log
            for seq in range(per_thread):
                with bind(seq=seq):
                    log.info("tick", extra={"w": worker, "s": seq})

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    records = read_records(tmp_path / "as-toolkit.jsonl")
    assert len(records) == threads * per_thread
    for record in records:
        assert record["context"] == {"worker": record["extra"]["w"], "seq": record["extra"]["s"]}
    assert bound_context() == {}  # nothing leaked into the main thread


def test_asyncio_tasks_keep_their_own_fields(tmp_path: Path, read_records: Reader) -> None:
    configure(console=False, log_dir=tmp_path, logger="t.ctx.async")
    log = logging.getLogger("t.ctx.async")

    async def request(request_id: str) -> None:
        with bind(request_id=request_id):
            for step in range(5):
                await asyncio.sleep(0)  # hand over to the other task mid-binding
                with bind(step=step):
                    log.info("step", extra={"owner": request_id})
                    await asyncio.sleep(0)

    async def main() -> None:
        with bind(app="server"):
            # Tasks copy the context at creation: both inherit app="server".
            await asyncio.gather(request("a"), request("b"))
            assert bound_context() == {"app": "server"}  # the tasks' binds stay theirs

    asyncio.run(main())
    records = read_records(tmp_path / "as-toolkit.jsonl")
    assert len(records) == 10
    owners = [r["extra"]["owner"] for r in records]
    assert owners[:4] in (["a", "b", "a", "b"], ["b", "a", "b", "a"])  # they did interleave
    for step_index, record in enumerate(records):
        assert record["context"] == {
            "app": "server",
            "request_id": record["extra"]["owner"],
            "step": step_index // 2,
        }
