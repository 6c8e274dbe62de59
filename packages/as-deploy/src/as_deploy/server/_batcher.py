"""Dynamic batching: requests for one model run together in one inference.

A :class:`Batcher` owns an asyncio queue per model. Its loop takes the first waiting
request, then gathers more for up to ``max_wait_s`` or until ``max_batch_size`` rows,
merging only requests whose dtypes and non-batch dimensions match; it concatenates them
along the first dimension, runs one inference in a worker thread (the event loop keeps
serving), and hands each request its own rows of the outputs. A request whose caller
gave up (a timeout) before its batch ran is left out. :class:`DirectRunner` is the same
interface without batching: each request runs on its own in the thread pool.

Both place each inference with :class:`Placement`: in the thread pool, or, for a model
whose recent inferences all took less than ``inline_below_s``, on the event loop's own
thread. Handing a job to a thread and its result back costs two wake-ups and two
hand-overs of the interpreter lock, more than a small model's whole inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from as_deploy.exceptions import OverloadedError, ServerError
from as_deploy.runtime import Array
from as_deploy.server._metrics import Metrics

__all__ = ["Batcher", "DirectRunner", "InferenceFn", "Placement"]

logger = logging.getLogger(__name__)

InferenceFn = Callable[[Mapping[str, Array]], dict[str, Array]]
"""Runs one inference: input arrays by name in, output arrays by name out."""

Signature = tuple[tuple[str, str, tuple[int, ...]], ...]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _signature(inputs: Mapping[str, Array]) -> Signature:
    return tuple(
        (name, array.dtype.str, tuple(array.shape[1:])) for name, array in sorted(inputs.items())
    )


class Placement:
    """Runs inferences in the thread pool, or on the event loop when they are short.

    Every inference is timed (in the thread that runs it). Once the last ``window``
    inferences all took less than ``inline_below_s``, the next ones run on the calling
    (event loop) thread; one that takes longer sends the following ones back to the
    pool. ``inline_below_s=0`` keeps every inference in the pool.

    Args:
        run: The inference function.
        executor: The thread pool.
        inline_below_s: Longest inference that may run on the event loop's thread.
        window: How many recent inferences the decision looks at.
        clock: Seconds, for timing the inferences.
    """

    def __init__(
        self,
        run: InferenceFn,
        executor: Executor,
        inline_below_s: float,
        *,
        window: int = 16,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Start with every inference in the pool until ``window`` have been timed."""
        self._run = run
        self._executor = executor
        self.inline_below_s = inline_below_s
        self._recent: deque[float] = deque(maxlen=window)
        self._clock = clock
        self.inline_runs = 0
        self.pool_runs = 0

    @property
    def inline(self) -> bool:
        """Whether the next inference runs on the calling thread."""
        recent = self._recent
        return (
            self.inline_below_s > 0
            and len(recent) == recent.maxlen
            and max(recent) < self.inline_below_s
        )

    def _timed(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        start = self._clock()
        try:
            return self._run(inputs)
        finally:
            self._recent.append(self._clock() - start)

    async def __call__(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one inference where it is cheapest; return its outputs."""
        if self.inline:
            self.inline_runs += 1
            return self._timed(inputs)
        self.pool_runs += 1
        # run_in_executor's future cancels the pool job too if it has not started.
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, inputs)


@dataclass
class _Job:
    inputs: Mapping[str, Array]
    rows: int
    future: asyncio.Future[dict[str, Array]]
    signature: Signature = field(init=False)

    def __post_init__(self) -> None:
        self.signature = _signature(self.inputs)


class DirectRunner:
    """Runs each request on its own in the thread pool (batching off).

    Args:
        model: The model's label for metrics.
        run: The inference function.
        executor: The thread pool.
        metrics: Where to record batch sizes and inference time.
        inline_below_s: Inferences shorter than this run on the event loop's thread
            (:class:`Placement`); 0 keeps them all in the pool.
    """

    def __init__(
        self,
        model: str,
        run: InferenceFn,
        executor: Executor,
        metrics: Metrics,
        *,
        inline_below_s: float = 0.0,
    ) -> None:
        """Keep what each inference needs."""
        self.model = model
        self.placement = Placement(run, executor, inline_below_s)
        self._metrics = metrics
        self._closed = False
        self._active = 0

    @property
    def busy(self) -> bool:
        """Whether requests are running."""
        return self._active > 0

    async def submit(self, inputs: Mapping[str, Array], rows: int) -> dict[str, Array]:
        """Run one inference for the request and return its outputs.

        Raises:
            OverloadedError: The server is shutting down.
            RunnerError: The inference failed.
        """
        if self._closed:
            raise OverloadedError("the server is shutting down", code="shutting_down")
        loop = asyncio.get_running_loop()
        self._active += 1
        try:
            start = loop.time()
            outputs = await self.placement(inputs)
            seconds, batch_rows, batch_requests = self._metrics.inference_series(self.model)
            seconds.observe(loop.time() - start)
            batch_rows.observe(rows)
            batch_requests.observe(1)
            return outputs
        finally:
            self._active -= 1

    async def close(self) -> None:
        """Refuse new requests and wait for the running ones."""
        self._closed = True
        while self._active:
            await asyncio.sleep(0.01)


class Batcher:
    """Merges concurrent requests for one model into batched inferences.

    Args:
        model: The model's label for metrics and logs.
        run: The inference function (called in ``executor``).
        executor: The thread pool.
        metrics: Where to record batch sizes, queue depth and inference time.
        max_batch_size: Most rows per inference (a bigger request runs alone).
        max_wait_s: How long the first request waits for others, at most.
        max_queue_size: Most waiting requests; more get :class:`OverloadedError`.
        max_concurrent_batches: Most batches of this model running at once. The next
            batch starts while one runs (up to this many); past it, queued requests wait
            for one to finish and join the next batch meanwhile.
        arriving: How many requests are being read and checked on their way to a
            batcher. The batch waits for more rows only while this is above zero: a
            lone request runs at once instead of paying ``max_wait_s`` for nothing.
        inline_below_s: Batches whose inference takes less than this run on the event
            loop's thread (:class:`Placement`); 0 keeps them all in the pool.
    """

    def __init__(
        self,
        model: str,
        run: InferenceFn,
        executor: Executor,
        metrics: Metrics,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.002,
        max_queue_size: int = 1024,
        max_concurrent_batches: int = 1,
        arriving: Callable[[], int] | None = None,
        inline_below_s: float = 0.0,
    ) -> None:
        """Create the batcher; :meth:`start` starts its loop."""
        self._arriving = arriving
        self.model = model
        self.placement = Placement(run, executor, inline_below_s)
        self._metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_size = max_queue_size
        self.max_concurrent_batches = max_concurrent_batches
        self._queue: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._company: asyncio.Future[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()  # running now
        self._slot: asyncio.Future[None] | None = None  # settled when one finishes
        self._depth: Any = None  # the queue-depth gauge of this model, once set
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"as-deploy batcher {self.model}"
            )

    @property
    def busy(self) -> bool:
        """Whether requests are waiting or running."""
        return bool(self._queue) or bool(self._batches)

    async def submit(self, inputs: Mapping[str, Array], rows: int) -> dict[str, Array]:
        """Queue the request and return its rows of the batch's outputs.

        Cancelling the caller (a timeout) leaves its rows out if the batch has not run.

        Raises:
            OverloadedError: The queue is full or the server is shutting down.
            RunnerError: The inference failed.
        """
        if self._closed:
            raise OverloadedError("the server is shutting down", code="shutting_down")
        if len(self._queue) >= self.max_queue_size:
            raise OverloadedError(
                f"the queue of model {self.model} is full ({self.max_queue_size} requests)",
                code="queue_full",
            )
        self.start()
        future: asyncio.Future[dict[str, Array]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(inputs, rows, future))
        self._queue_changed()
        self._wakeup.set()
        if self._company is not None and not self._company.done():
            self._company.set_result(None)
        return await future

    def _queue_changed(self) -> None:
        if self._depth is None:
            self._depth = self._metrics.queue_depth.labels(self.model)
        self._depth.set(len(self._queue))

    async def close(self) -> None:
        """Refuse new requests, run every queued one, then stop the loop."""
        self._closed = True
        self._wakeup.set()
        if self._company is not None:
            _settle(self._company)
        if self._task is not None:
            await self._task
        if not self._metrics.multiprocess:  # worker processes share it: it stays at 0
            with contextlib.suppress(KeyError):  # no request ever set the label
                self._metrics.queue_depth.remove(self.model)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                # The requests stay queued (and counted) until a batch may start.
                while len(self._batches) >= self.max_concurrent_batches:
                    await self._wait_for_slot()
                first = await self._next()
                if first is None:
                    return
                batch = [first]
                rows = first.rows
                deadline = loop.time() + self.max_wait_s
                while rows < self.max_batch_size:
                    rows = self._gather(batch, rows)
                    remaining = deadline - loop.time()
                    if rows >= self.max_batch_size or remaining <= 0 or self._closed:
                        break
                    if self._arriving is not None and self._arriving() == 0:
                        break  # nothing else is on its way: waiting would only add latency
                    await self._wait_for_company(remaining)
                self._queue_changed()
                task = loop.create_task(self._run_batch(batch))
                self._batches.add(task)
                task.add_done_callback(self._batch_done)
        finally:
            while self._batches:  # closing: the batches started are answered
                await asyncio.wait(set(self._batches))

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        if self._slot is not None:
            _settle(self._slot)

    async def _wait_for_slot(self) -> None:
        """Wait until one of the running batches finishes."""
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot = slot
        try:
            await slot
        finally:
            self._slot = None

    async def _wait_for_company(self, remaining: float) -> None:
        """Wait up to ``remaining`` seconds for another request to be queued (or close)."""
        loop = asyncio.get_running_loop()
        company: asyncio.Future[None] = loop.create_future()
        self._company = company
        timer = loop.call_later(remaining, _settle, company)
        try:
            await company
        finally:
            timer.cancel()
            self._company = None

    async def _next(self) -> _Job | None:
        """Wait for the first live job; ``None`` once closed and empty."""
        while True:
            while self._queue:
                job = self._queue.popleft()
                if not job.future.done():
                    self._queue_changed()
                    return job
            self._queue_changed()
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def _gather(self, batch: list[_Job], rows: int) -> int:
        """Move queued jobs that fit ``batch`` into it; return the batch's rows."""
        signature = batch[0].signature
        kept: deque[_Job] = deque()
        while self._queue:
            job = self._queue.popleft()
            if job.future.done():
                continue  # its caller gave up: its rows are dropped
            if job.signature == signature and rows + job.rows <= self.max_batch_size:
                batch.append(job)
                rows += job.rows
            else:
                kept.append(job)
        self._queue = kept
        return rows

    async def _run_batch(self, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]
        if not live:
            return
        loop = asyncio.get_running_loop()
        rows = sum(job.rows for job in live)
        try:
            merged = {
                name: (
                    live[0].inputs[name]
                    if len(live) == 1
                    else np.concatenate([job.inputs[name] for job in live], axis=0)
                )
                for name in live[0].inputs
            }
            start = loop.time()
            outputs = await self.placement(merged)
            seconds, batch_rows, batch_requests = self._metrics.inference_series(self.model)
            seconds.observe(loop.time() - start)
            batch_rows.observe(rows)
            batch_requests.observe(len(live))
            self._split(live, rows, outputs)
        except Exception as exc:  # the loop must survive any failure of one batch
            if not isinstance(exc, ServerError):
                logger.warning("inference of a batch of %s failed: %s", self.model, exc)
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)

    def _split(self, live: list[_Job], rows: int, outputs: dict[str, Array]) -> None:
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != rows:
                raise ServerError(
                    f"model {self.model} returned {name} with shape {list(array.shape)} "
                    f"for a batch of {rows} rows; it cannot be split per request",
                    code="bad_model_output",
                )
        offset = 0
        for job in live:
            end = offset + job.rows
            if not job.future.done():
                job.future.set_result({name: array[offset:end] for name, array in outputs.items()})
            offset = end
