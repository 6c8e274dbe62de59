"""The loaded models: loading on first use, an LRU with a maximum count, preloading.

Every model version in use has a :class:`ModelEntry`: its verified files, its runner and
its batcher. :class:`ModelManager` keeps at most ``max_loaded_models`` and unloads the
least recently used one that no request is using to make room.

Nothing here touches the file system on the event loop. Listing a model's versions,
verifying a version's files (sha256) and opening it in its runtime run in threads of their
own, each piece of work once however many requests wait for it, at most
``max_concurrent_loads`` verifications and loads at a time, and bounded by
``model_load_timeout_s``. What they find is kept:

- a model's versions are listed at most once per :data:`LISTING_TTL_S` (a request for an
  explicit version not in the list looks at that one folder, not at all of them);
- the repository remembers verified versions, and refused ones, until a file changes
  (:class:`~as_deploy.repository.ModelRepository`), so asking again hashes nothing;
- a version the runtime refused is refused again, without opening it, until its files
  change.

Thrashing is refused: an idle loaded version is unloaded for another only once it has
been loaded ``min_residency_s``; a request that needs room sooner gets 503 with
``Retry-After``. (A version in use is never unloaded: when every loaded one is in use,
the limit is passed until one is idle.)

Repository errors become server errors here: an invalid name is a 400, a model or version
that is not there a 404, and one that is there but cannot be served (a symlink, a file
that is not a regular file, a sha256 or size that does not match the manifest, a bad
manifest, a file the runtime refuses, any other failure to load) a 409 whose message says
why; the other models keep serving.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from as_deploy.exceptions import (
    BadRequestError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    MissingRuntimeError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    RepositoryError,
    RunnerError,
    ServerError,
    UnsafePathError,
)
from as_deploy.manifest import Manifest, check_name
from as_deploy.repository import LoadedModel, ModelRepository, version_key
from as_deploy.runtime import ModelRunner, RunnerOptions, load_runner
from as_deploy.server._batcher import Batcher, DirectRunner
from as_deploy.server._metrics import Metrics
from as_deploy.settings import ServerSettings, parse_model_ref

__all__ = ["LISTING_TTL_S", "ModelEntry", "ModelManager", "ModelState"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]
T = TypeVar("T")

LISTING_TTL_S = 1.0
"""How long a model's list of versions is used before it is read again (seconds)."""

# Listing folders is quick: a few threads at most, apart from the loads' own.
_LISTING_THREADS = 4

ModelState = Literal["loaded", "loading", "unloaded"]
"""What ``GET /v1/models/{name}`` says of a version that can be served: loaded now, being
loaded, or verified but not loaded (its first predict loads it)."""


@dataclass(eq=False)
class ModelEntry:
    """One loaded model version.

    Attributes:
        model: The verified model (manifest, folder, model file).
        runner: The runner holding it.
        unit: Its batcher, or the direct runner when batching is off or impossible.
        in_flight: Requests using it now (it is not unloaded while any are).
        last_used: ``time.monotonic()`` of its last use.
        loaded_at: ``time.monotonic()`` of when it was loaded.
    """

    model: LoadedModel
    runner: ModelRunner
    unit: Batcher | DirectRunner
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def manifest(self) -> Manifest:
        """The version's manifest."""
        return self.model.manifest

    @property
    def key(self) -> Key:
        """``(name, version)``."""
        return (self.manifest.name, self.manifest.version)

    @property
    def idle(self) -> bool:
        """Whether no request is using it."""
        return self.in_flight == 0 and not self.unit.busy


def batchable(manifest: Manifest) -> bool:
    """Whether every input's and output's first dimension is dynamic (a batch axis)."""
    return all(
        spec.shape and spec.shape[0] is None for spec in (*manifest.inputs, *manifest.outputs)
    )


def _in_thread(
    work: Callable[[], T],
    name: str,
    orphan: Callable[[T], None] | None = None,
    threads: dict[threading.Thread, float] | None = None,
) -> asyncio.Future[T]:
    """Run ``work`` in a daemon thread of its own; the future gets its result.

    A daemon thread: a read that never returns (a hung network file system) must not keep
    the process from exiting on SIGTERM. If nobody takes the result (the future was
    cancelled, or the loop is closed), ``orphan`` gets it, to release what it holds.
    ``threads`` holds the thread, with its start time, while it runs.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            if error is None and orphan is not None:
                orphan(result)  # type: ignore[arg-type]
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except Exception as exc:  # handed to the waiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            if error is None and orphan is not None:
                orphan(result)  # type: ignore[arg-type]
        finally:
            if threads is not None:
                threads.pop(thread, None)

    thread = threading.Thread(target=run, name=name, daemon=True)
    if threads is not None:
        threads[thread] = time.monotonic()
    thread.start()
    return future


@dataclass(eq=False)
class _Job:
    """One piece of blocking work (a listing, a verification, a load), shared by its waiters.

    Its deadline runs from when it got a slot (``started``), or from when it was asked for
    while it waits for one.
    """

    what: str
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    task: asyncio.Task[Any] | None = None

    def deadline(self, timeout: float) -> float:
        return (self.started if self.started is not None else self.created) + timeout


def _copy(error: ServerError) -> ServerError:
    """A fresh instance of ``error``, to raise once more without growing its traceback."""
    return type(error)(error.message, code=error.code, detail=error.detail, headers=error.headers)


class ModelManager:
    """Loads, keeps and unloads model versions for the server.

    Args:
        repository: Where the models are.
        settings: The server settings (LRU size, residency, loads, batching, runtime).
        executor: The thread pool inferences run in.
        metrics: The app's metrics.

    Attributes:
        listing_ttl_s: How long a model's list of versions is used (:data:`LISTING_TTL_S`).
        preload_errors: Why models of an explicit ``preload`` list failed (``/ready`` is
            503 while there are any).
        preload_failures: Why preloaded models failed, every one (with the default
            preload too, where they do not keep the server from being ready).
    """

    def __init__(
        self,
        repository: ModelRepository,
        settings: ServerSettings,
        executor: Executor,
        metrics: Metrics,
    ) -> None:
        """Create an empty manager; nothing loads until :meth:`acquire` or :meth:`preload`."""
        self.repository = repository
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        # How many requests are on their way to a batcher (set by the app).
        self.arriving: Callable[[], int] = lambda: 0
        self.options: RunnerOptions = settings.runtime.options()
        self.listing_ttl_s = LISTING_TTL_S
        self._entries: OrderedDict[Key, ModelEntry] = OrderedDict()
        self._jobs: dict[tuple[str, Key], _Job] = {}
        # The threads that verify or load, with when each started: close() waits for them.
        self._threads: dict[threading.Thread, float] = {}
        self._load_slots = asyncio.Semaphore(settings.max_concurrent_loads)
        self._listing_slots = asyncio.Semaphore(_LISTING_THREADS)
        self._listings: dict[str, tuple[float, list[str]]] = {}
        # Versions the runtime refused, with the verified model it refused: the same model
        # (the repository hands out the same object until a file changes) is not retried.
        self._refused: dict[Key, tuple[LoadedModel, ModelUnavailableError]] = {}
        self.known_names: set[str] = set()
        self.closed = False
        self.preload_pending: list[str] = []
        self.preload_errors: dict[str, str] = {}
        self.preload_failures: dict[str, str] = {}
        self.preload_done = False

    # -- errors ------------------------------------------------------------------------

    def _redact(self, message: str) -> str:
        """Show repository paths relative to the repository, not the server's file system."""
        try:
            root = str(self.repository.root.resolve())
        except OSError:
            return message
        return message.replace(root, "<repo>")

    def _unavailable(
        self, name: str, version: str | None, exc: BaseException
    ) -> ModelUnavailableError:
        which = name if version is None else f"{name}/{version}"
        if isinstance(exc, IntegrityError):
            code, why = "integrity_check_failed", "failed its integrity check"
        elif isinstance(exc, UnsafePathError):
            code, why = "unsafe_path", "is refused"
        elif isinstance(exc, MissingRuntimeError):
            code, why = "runtime_missing", "needs a runtime that is not installed"
        else:
            code, why = "model_unavailable", "failed to load"
        if not isinstance(exc, RepositoryError | ManifestError | RunnerError | MissingRuntimeError):
            # Not a refusal the repository or a runner explains: keep the traceback.
            logger.error("loading %s failed", which, exc_info=exc)
        message = str(exc) or type(exc).__name__
        self.metrics.model_load_failures.labels(
            name if name in self.known_names else "_other"
        ).inc()
        return ModelUnavailableError(
            f"model {which} {why}: {self._redact(message)}",
            code=code,
            detail={"model": name, "version": version},
        )

    # -- blocking work, off the event loop ---------------------------------------------

    def _start(
        self,
        kind: str,
        key: Key,
        what: str,
        slots: asyncio.Semaphore,
        work: Callable[[], T],
        after: Callable[[T], Awaitable[Any]] | None = None,
        orphan: Callable[[T], None] | None = None,
    ) -> _Job:
        """The job ``(kind, key)``: the running one, or a new one that runs ``work``."""
        job = self._jobs.get((kind, key))
        if job is not None:
            return job
        job = _Job(what)
        timeout = self.settings.model_load_timeout_s

        async def run() -> Any:
            await slots.acquire()
            job.started = time.monotonic()
            released = False

            def release() -> None:
                # At the end of the work, or at its deadline: a thread that never returns
                # must not hold its slot for ever (the work goes on, uncounted).
                nonlocal released
                if not released:
                    released = True
                    slots.release()

            timer = asyncio.get_running_loop().call_later(timeout, release)
            try:
                result = await _in_thread(work, f"as-deploy {kind} {what}", orphan, self._threads)
            finally:
                timer.cancel()
                release()
            return await after(result) if after is not None else result

        def done(task: asyncio.Task[Any]) -> None:
            if self._jobs.get((kind, key)) is job:
                del self._jobs[(kind, key)]
            if not task.cancelled():
                task.exception()  # retrieved here: waiters may all have timed out

        job.task = asyncio.get_running_loop().create_task(run(), name=f"as-deploy {kind} {what}")
        job.task.add_done_callback(done)
        self._jobs[(kind, key)] = job
        return job

    async def _wait(self, job: _Job) -> Any:
        """The result of ``job``, waiting at most until its deadline.

        Raises:
            OverloadedError: It is still waiting for a slot (503), or the server is closing.
            ModelUnavailableError: It took longer than ``model_load_timeout_s`` (409); it
                goes on in the background and its result is kept if it comes.
            Exception: What the job raised.
        """
        task = job.task
        assert task is not None
        timeout = self.settings.model_load_timeout_s
        while not task.done():
            left = job.deadline(timeout) - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait({task}, timeout=left)
        if not task.done():
            if job.started is None:
                retry = str(self.settings.limits.retry_after_s)
                raise OverloadedError(
                    f"{job.what} is waiting for its turn to load: "
                    f"max_concurrent_loads={self.settings.max_concurrent_loads} other loads "
                    "are running; retry later",
                    code="loads_busy",
                    headers={"Retry-After": retry},
                )
            raise ModelUnavailableError(
                f"{job.what} did not load within {timeout:g} s (model_load_timeout_s); "
                "it goes on loading in the background",
                code="load_timeout",
                detail={"timeout_s": timeout},
            )
        if task.cancelled():
            raise OverloadedError("the server is shutting down", code="shutting_down")
        error = task.exception()
        if isinstance(error, ServerError):
            raise _copy(error) from None
        if error is not None:
            raise error.with_traceback(None)
        return task.result()

    # -- names and versions ------------------------------------------------------------

    @staticmethod
    def _check_names(name: str, version: str | None) -> None:
        try:
            check_name(name)
            if version is not None:
                check_name(version, "version")
        except InvalidNameError as exc:
            raise BadRequestError(str(exc), code="invalid_name") from None

    async def versions(self, name: str) -> list[str]:
        """The versions of ``name``, oldest first, listed at most once per ``listing_ttl_s``.

        Raises:
            NotFoundError: No such model.
            ModelUnavailableError: Its folder is refused (a symlink) or cannot be listed.
        """
        cached = self._listings.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.listing_ttl_s:
            return cached[1]
        job = self._start(
            "list",
            (name, ""),
            f"model {name}",
            self._listing_slots,
            lambda: self.repository.versions(name),
        )
        try:
            versions: list[str] = await self._wait(job)
        except ModelNotFoundError:
            self._listings.pop(name, None)
            raise NotFoundError(
                f"model {name!r} is not in the repository", code="model_not_found"
            ) from None
        except ServerError:
            raise
        except Exception as exc:
            raise self._unavailable(name, None, exc) from None
        assert job.started is not None
        self._listings[name] = (job.started, versions)
        self.known_names.add(name)
        return versions

    async def resolve_key(self, name: str, version: str | None) -> tuple[Key, list[str]]:
        """Check ``name`` and ``version``; return the version to use and every version.

        The latest version is the newest of the listing (at most ``listing_ttl_s`` old).
        An explicit version not in it is looked for on its own: one folder, not all.

        Raises:
            BadRequestError: An invalid name or version.
            NotFoundError: No such model or version.
            ModelUnavailableError: The model's folder, the version's folder or its manifest
                is refused (a symlink, not a regular file).
        """
        self._check_names(name, version)
        versions = await self.versions(name)
        if version is None:
            return (name, versions[-1]), versions
        if version in versions:
            return (name, version), versions
        job = self._start(
            "find",
            (name, version),
            f"model {name}/{version}",
            self._listing_slots,
            lambda: self.repository.version_dir(name, version),
        )
        try:
            await self._wait(job)
        except ModelNotFoundError:
            raise NotFoundError(
                f"model {name!r} has no version {version!r}; it has {versions}",
                code="version_not_found",
                detail={"versions": versions},
            ) from None
        except ServerError:
            raise
        except Exception as exc:
            raise self._unavailable(name, version, exc) from None
        # Written since the listing: it is in the next one; meanwhile add it to this one.
        versions = sorted({*versions, version}, key=version_key)
        cached = self._listings.get(name)
        if cached is not None:
            self._listings[name] = (cached[0], versions)
        return (name, version), versions

    def resolve(self, name: str, version: str | None) -> Key:
        """Like :meth:`resolve_key`, but blocking and uncached: for a worker thread.

        Raises:
            BadRequestError, NotFoundError, ModelUnavailableError: See :meth:`resolve_key`.
        """
        self._check_names(name, version)
        try:
            versions = self.repository.versions(name)
        except ModelNotFoundError:
            raise NotFoundError(
                f"model {name!r} is not in the repository", code="model_not_found"
            ) from None
        except Exception as exc:
            raise self._unavailable(name, None, exc) from None
        self.known_names.add(name)
        if version is None:
            return name, versions[-1]
        if version not in versions:
            try:
                self.repository.version_dir(name, version)
            except ModelNotFoundError:
                raise NotFoundError(
                    f"model {name!r} has no version {version!r}; it has {versions}",
                    code="version_not_found",
                    detail={"versions": versions},
                ) from None
            except Exception as exc:
                raise self._unavailable(name, version, exc) from None
        return name, version

    # -- loading -----------------------------------------------------------------------

    def loaded(self) -> list[Key]:
        """The loaded versions, least recently used first."""
        return list(self._entries)

    def entry(self, key: Key) -> ModelEntry | None:
        """The loaded entry of ``key``, or ``None``."""
        return self._entries.get(key)

    def loading(self, key: Key) -> bool:
        """Whether ``key`` is being loaded now."""
        return ("load", key) in self._jobs

    def read(self, key: Key) -> LoadedModel:
        """Load and verify ``key``'s files without a runner (blocking: a worker thread).

        The repository answers from its cache when the files have not changed.

        Raises:
            ModelUnavailableError: It cannot be served: its files are refused, or the
                runtime refused it before (and its files have not changed since).
        """
        try:
            model = self.repository.load(*key)
        except Exception as exc:
            if isinstance(exc, ModelNotFoundError):
                # Removed since it was listed: the next request lists the model again.
                self._listings.pop(key[0], None)
            raise self._unavailable(key[0], key[1], exc) from None
        refused = self._refused.get(key)
        if refused is not None and refused[0] is model:
            raise _copy(refused[1]) from None
        return model

    def _load_sync(self, key: Key) -> tuple[LoadedModel, ModelRunner]:
        model = self.read(key)
        self.metrics.model_loads.labels(key[0]).inc()
        try:
            runner = load_runner(model, self.options)
        except Exception as exc:
            error = self._unavailable(key[0], key[1], exc)
            self._refused[key] = (model, error)
            raise error from None
        self._refused.pop(key, None)
        return model, runner

    async def describe(
        self, name: str, version: str | None
    ) -> tuple[LoadedModel, ModelState, list[str]]:
        """The verified model ``name``/``version``, its state and the model's versions.

        Verifying does not load the model; a version that fails to load gives the error a
        predict would get.

        Raises:
            BadRequestError, NotFoundError, ModelUnavailableError: See :meth:`resolve_key`
                and :meth:`read`.
            OverloadedError: Too many loads are running (503).
        """
        key, versions = await self.resolve_key(name, version)
        entry = self._entries.get(key)
        if entry is not None:
            return entry.model, "loaded", versions
        job = self._start(
            "read",
            key,
            f"model {key[0]}/{key[1]}",
            self._load_slots,
            lambda: self.read(key),
        )
        model: LoadedModel = await self._wait(job)
        refused = self._refused.get(key)
        if refused is not None and refused[0] is model:
            raise _copy(refused[1]) from None
        if key in self._entries:
            return self._entries[key].model, "loaded", versions
        return model, "loading" if self.loading(key) else "unloaded", versions

    async def acquire(self, name: str, version: str | None) -> ModelEntry:
        """Return the loaded entry for ``name``/``version`` (loading it), marked in use.

        Call :meth:`release` when done.

        Raises:
            BadRequestError, NotFoundError, ModelUnavailableError: See :meth:`resolve_key`.
            OverloadedError: No room to load it yet, too many loads running, or the server
                is shutting down.
        """
        if self.closed:
            raise OverloadedError("the server is shutting down", code="shutting_down")
        key, _ = await self.resolve_key(name, version)
        for _attempt in range(3):
            entry: ModelEntry | None = self._entries.get(key)
            if entry is None:
                job = self._jobs.get(("load", key))
                if job is None:
                    if self.closed:
                        raise OverloadedError("the server is shutting down", code="shutting_down")
                    self._check_room(key)
                    job = self._start_load(key)
                entry = await self._wait(job)
            current = self._entries.get(key)
            if current is not None and current is entry:
                # Still loaded: not unloaded while this request waited for it.
                current.in_flight += 1
                current.last_used = time.monotonic()
                self._entries.move_to_end(key)
                return current
        raise OverloadedError(
            f"model {key[0]}/{key[1]} was unloaded as soon as it was loaded; retry later",
            code="no_model_slot",
            headers={"Retry-After": str(self.settings.limits.retry_after_s)},
        )

    def release(self, entry: ModelEntry) -> None:
        """Mark one use of ``entry`` as finished."""
        entry.in_flight -= 1
        entry.last_used = time.monotonic()

    def _check_room(self, key: Key) -> None:
        """Refuse (503) to load ``key`` when that would unload a version loaded just now."""
        limit = self.settings.max_loaded_models
        loading = sum(1 for kind, _ in self._jobs if kind == "load")
        needed = len(self._entries) + loading + 1 - limit
        if needed <= 0:
            return
        now = time.monotonic()
        residency = self.settings.min_residency_s
        idle = [e for k, e in self._entries.items() if k != key and e.idle]
        young = [e for e in idle if now - e.loaded_at < residency]
        if len(idle) - len(young) >= needed or not young:
            # Room will be made; or every other version is in use, and the limit is passed
            # until one is idle (a version in use is never unloaded).
            return
        wait = min(e.loaded_at + residency - now for e in young)
        retry = max(self.settings.limits.retry_after_s, math.ceil(wait))
        raise OverloadedError(
            f"no room to load model {key[0]}/{key[1]}: {len(self._entries)} versions are "
            f"loaded (max_loaded_models={limit}), each in use or loaded less than "
            f"min_residency_s={residency:g} s ago; retry in {retry} s",
            code="no_model_slot",
            detail={"max_loaded_models": limit, "min_residency_s": residency},
            headers={"Retry-After": str(retry)},
        )

    def _start_load(self, key: Key) -> _Job:
        started = time.perf_counter()

        async def install(loaded: tuple[LoadedModel, ModelRunner]) -> ModelEntry:
            model, runner = loaded
            if self.closed:
                runner.close()
                raise OverloadedError("the server is shutting down", code="shutting_down")
            entry = ModelEntry(model=model, runner=runner, unit=self._unit(key, model, runner))
            self._entries[key] = entry
            self.metrics.loaded_models.set(len(self._entries))
            logger.info(
                "loaded model %s/%s (%s) in %.0f ms",
                key[0],
                key[1],
                model.manifest.format,
                (time.perf_counter() - started) * 1000,
                extra={"model": key[0], "version": key[1]},
            )
            await self._evict(keep=key)
            return entry

        def orphan(loaded: tuple[LoadedModel, ModelRunner]) -> None:
            loaded[1].close()

        return self._start(
            "load",
            key,
            f"model {key[0]}/{key[1]}",
            self._load_slots,
            lambda: self._load_sync(key),
            after=install,
            orphan=orphan,
        )

    def _unit(self, key: Key, model: LoadedModel, runner: ModelRunner) -> Batcher | DirectRunner:
        label = key[0]
        batching = self.settings.batching
        inline_below_s = self.settings.runtime.inline_below_ms / 1000
        if batching.enabled and batchable(model.manifest):
            batcher = Batcher(
                label,
                runner.run,
                self.executor,
                self.metrics,
                max_batch_size=batching.max_batch_size,
                max_wait_s=batching.max_wait_ms / 1000,
                max_queue_size=batching.max_queue_size,
                max_concurrent_batches=batching.max_concurrent_batches,
                arriving=self.arriving,
                inline_below_s=inline_below_s,
            )
            batcher.start()
            return batcher
        return DirectRunner(
            label, runner.run, self.executor, self.metrics, inline_below_s=inline_below_s
        )

    async def _evict(self, keep: Key) -> None:
        limit = self.settings.max_loaded_models
        residency = self.settings.min_residency_s
        while len(self._entries) > limit:
            now = time.monotonic()
            victim = next(
                (
                    e
                    for k, e in self._entries.items()
                    if k != keep and e.idle and now - e.loaded_at >= residency
                ),
                None,
            )
            if victim is None:
                logger.warning(
                    "%d models are loaded, over max_loaded_models=%d: every other one is in "
                    "use or loaded less than min_residency_s=%g s ago",
                    len(self._entries),
                    limit,
                    residency,
                )
                return
            await self._unload(victim)

    async def _unload(self, entry: ModelEntry) -> None:
        self._entries.pop(entry.key, None)
        self.metrics.loaded_models.set(len(self._entries))
        await entry.unit.close()
        entry.runner.close()
        logger.info("unloaded model %s/%s", *entry.key, extra={"model": entry.key[0]})

    async def preload(self, refs: list[str] | None) -> None:
        """Load the preload list; ``None`` loads every model's latest version that fits.

        Every failure is kept in :attr:`preload_failures`; those of an explicit list also
        in :attr:`preload_errors` (``/ready`` then answers 503). Whatever a model's load
        raises, the others are loaded and :attr:`preload_done` is set.
        """
        required = refs is not None
        try:
            if refs is None:
                try:
                    listing = await self._wait(
                        self._start(
                            "list",
                            ("", ""),
                            "the repository",
                            self._listing_slots,
                            self.repository.list_models,
                        )
                    )
                except Exception as exc:
                    logger.error("could not list the repository to preload it: %s", exc)
                    listing = []
                names = sorted({name for name, _ in listing})
                refs = names[: self.settings.max_loaded_models]
            self.preload_pending = list(refs)
            for ref in refs:
                try:
                    name, version = parse_model_ref(ref)
                    entry = await self.acquire(name, version)
                    self.release(entry)
                except Exception as exc:
                    message = exc.message if isinstance(exc, ServerError) else str(exc)
                    message = message or type(exc).__name__
                    logger.error("could not preload %s: %s", ref, message)
                    self.preload_failures[ref] = message
                    if required:
                        self.preload_errors[ref] = message
                finally:
                    self.preload_pending.remove(ref)
        finally:
            self.preload_done = True

    async def close(self) -> None:
        """Refuse new requests, finish the queued ones and unload every model.

        A verification or load still running is waited for, each at most until its
        ``model_load_timeout_s`` deadline, and what it loaded is released: the process
        must not exit while a thread is inside a runtime's native code (onnxruntime then
        aborts the process). One past its deadline is left behind, with a warning.
        """
        self.closed = True
        for job in list(self._jobs.values()):
            if job.task is not None:
                job.task.cancel()
        for entry in list(self._entries.values()):
            await self._unload(entry)
        await self._join_threads()

    async def _join_threads(self) -> None:
        timeout = self.settings.model_load_timeout_s
        for thread, started in list(self._threads.items()):
            remaining = started + timeout - time.monotonic()
            while thread.is_alive() and remaining > 0:
                await asyncio.sleep(min(0.02, remaining))
                remaining = started + timeout - time.monotonic()
            if thread.is_alive():
                logger.warning(
                    "%s is still running %.0f s after it started, past model_load_timeout_s="
                    "%g s; the server stops without it",
                    thread.name,
                    time.monotonic() - started,
                    timeout,
                )
        # The threads that finished handed their results over (or to ``orphan``) through
        # the loop: let those callbacks run before the loop stops.
        await asyncio.sleep(0)
