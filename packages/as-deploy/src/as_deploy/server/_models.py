"""The loaded models: loading on first use, an LRU with a maximum count, preloading.

Every model version in use has a :class:`ModelEntry`: its verified files, its runner and
its batcher. :class:`ModelManager` loads versions in a worker thread (hashing files and
creating a session must not stall the event loop), keeps at most ``max_loaded_models``,
and unloads the least recently used one that no request is using to make room.

Repository errors become server errors here: an invalid name is a 400, a model or version
that is not there a 404, and one that is there but cannot be served (a symlink, a sha256
or size that does not match the manifest, a bad manifest, a file the runtime refuses) a
409 whose message says why; the other models keep serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

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
from as_deploy.repository import LoadedModel, ModelRepository
from as_deploy.runtime import ModelRunner, RunnerOptions, load_runner
from as_deploy.server._batcher import Batcher, DirectRunner
from as_deploy.server._metrics import Metrics
from as_deploy.settings import ServerSettings, parse_model_ref

__all__ = ["ModelEntry", "ModelManager"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass(eq=False)
class ModelEntry:
    """One loaded model version.

    Attributes:
        model: The verified model (manifest, folder, model file).
        runner: The runner holding it.
        unit: Its batcher, or the direct runner when batching is off or impossible.
        in_flight: Requests using it now (it is not unloaded while any are).
        last_used: ``time.monotonic()`` of its last use.
    """

    model: LoadedModel
    runner: ModelRunner
    unit: Batcher | DirectRunner
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)

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


class ModelManager:
    """Loads, keeps and unloads model versions for the server.

    Args:
        repository: Where the models are.
        settings: The server settings (LRU size, batching, runtime).
        executor: The thread pool inferences run in.
        metrics: The app's metrics.
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
        self._entries: OrderedDict[Key, ModelEntry] = OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}
        self.known_names: set[str] = set()
        self.closed = False
        self.preload_pending: list[str] = []
        self.preload_errors: dict[str, str] = {}
        self.preload_done = False

    # -- names and versions ------------------------------------------------------------

    def _redact(self, message: str) -> str:
        """Show repository paths relative to the repository, not the server's file system."""
        try:
            root = str(self.repository.root.resolve())
        except OSError:
            return message
        return message.replace(root, "<repo>")

    def resolve(self, name: str, version: str | None) -> Key:
        """Check ``name`` and ``version`` and return the version to use (latest if ``None``).

        Runs in a worker thread; names are checked before the file system is touched.

        Raises:
            BadRequestError: An invalid name or version.
            NotFoundError: No such model or version.
            ModelUnavailableError: The model's folder is a symlink.
        """
        try:
            check_name(name)
            if version is not None:
                check_name(version, "version")
        except InvalidNameError as exc:
            raise BadRequestError(str(exc), code="invalid_name") from None
        try:
            versions = self.repository.versions(name)
        except ModelNotFoundError:
            raise NotFoundError(
                f"model {name!r} is not in the repository", code="model_not_found"
            ) from None
        except UnsafePathError as exc:
            raise self._unavailable(name, None, exc) from None
        except RepositoryError as exc:
            raise self._unavailable(name, None, exc) from None
        self.known_names.add(name)
        if version is None:
            return name, versions[-1]
        if version not in versions:
            # Not a plain version folder: say why if it is one that is refused (a symlink).
            try:
                self.repository.load(name, version)
            except ModelNotFoundError:
                raise NotFoundError(
                    f"model {name!r} has no version {version!r}; it has {versions}",
                    code="version_not_found",
                    detail={"versions": versions},
                ) from None
            except (RepositoryError, ManifestError) as exc:
                raise self._unavailable(name, version, exc) from None
        return name, version

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
        self.metrics.model_load_failures.labels(
            name if name in self.known_names else "_other"
        ).inc()
        return ModelUnavailableError(
            f"model {which} {why}: {self._redact(str(exc))}",
            code=code,
            detail={"model": name, "version": version},
        )

    # -- loading -----------------------------------------------------------------------

    def loaded(self) -> list[Key]:
        """The loaded versions, least recently used first."""
        return list(self._entries)

    def entry(self, key: Key) -> ModelEntry | None:
        """The loaded entry of ``key``, or ``None``."""
        return self._entries.get(key)

    def read(self, key: Key) -> LoadedModel:
        """Load and verify ``key``'s files without a runner (worker thread).

        Raises:
            NotFoundError: The version is gone.
            ModelUnavailableError: It cannot be served.
        """
        try:
            return self.repository.load(*key)
        except (RepositoryError, ManifestError) as exc:
            raise self._unavailable(key[0], key[1], exc) from None

    def _load_sync(self, key: Key) -> tuple[LoadedModel, ModelRunner]:
        model = self.read(key)
        try:
            runner = load_runner(model, self.options)
        except (RunnerError, MissingRuntimeError) as exc:
            raise self._unavailable(key[0], key[1], exc) from None
        return model, runner

    async def acquire(self, name: str, version: str | None) -> ModelEntry:
        """Return the loaded entry for ``name``/``version`` (loading it), marked in use.

        Call :meth:`release` when done.

        Raises:
            BadRequestError, NotFoundError, ModelUnavailableError: See :meth:`resolve`.
            OverloadedError: The server is shutting down.
        """
        if self.closed:
            raise OverloadedError("the server is shutting down", code="shutting_down")
        # A directory listing: quick enough to run on the event loop for every request.
        key = self.resolve(name, version)
        entry = self._entries.get(key)
        if entry is None:
            entry = await self._load(key)
        entry.in_flight += 1
        entry.last_used = time.monotonic()
        self._entries.move_to_end(key)
        return entry

    def release(self, entry: ModelEntry) -> None:
        """Mark one use of ``entry`` as finished."""
        entry.in_flight -= 1
        entry.last_used = time.monotonic()

    async def _load(self, key: Key) -> ModelEntry:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry
            if self.closed:
                raise OverloadedError("the server is shutting down", code="shutting_down")
            started = time.perf_counter()
            model, runner = await asyncio.to_thread(self._load_sync, key)
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

    def _unit(self, key: Key, model: LoadedModel, runner: ModelRunner) -> Batcher | DirectRunner:
        label = key[0]
        batching = self.settings.batching
        if batching.enabled and batchable(model.manifest):
            batcher = Batcher(
                label,
                runner.run,
                self.executor,
                self.metrics,
                max_batch_size=batching.max_batch_size,
                max_wait_s=batching.max_wait_ms / 1000,
                max_queue_size=batching.max_queue_size,
                arriving=self.arriving,
            )
            batcher.start()
            return batcher
        return DirectRunner(label, runner.run, self.executor, self.metrics)

    async def _evict(self, keep: Key) -> None:
        limit = self.settings.max_loaded_models
        while len(self._entries) > limit:
            victim = next(
                (e for k, e in self._entries.items() if k != keep and e.idle and e.in_flight == 0),
                None,
            )
            if victim is None:
                logger.warning(
                    "%d models are loaded, over max_loaded_models=%d: every other one is in use",
                    len(self._entries),
                    limit,
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

        Failures of an explicit list are kept in :attr:`preload_errors` (``/ready`` then
        answers 503); with ``None`` they are only logged.
        """
        required = refs is not None
        if refs is None:
            names = sorted(
                {name for name, _ in await asyncio.to_thread(self.repository.list_models)}
            )
            refs = names[: self.settings.max_loaded_models]
        self.preload_pending = list(refs)
        for ref in refs:
            try:
                name, version = parse_model_ref(ref)
                entry = await self.acquire(name, version)
                self.release(entry)
            except (ServerError, InvalidNameError) as exc:
                message = exc.message if isinstance(exc, ServerError) else str(exc)
                logger.error("could not preload %s: %s", ref, message)
                if required:
                    self.preload_errors[ref] = message
            self.preload_pending.remove(ref)
        self.preload_done = True

    async def close(self) -> None:
        """Refuse new requests, finish the queued ones and unload every model."""
        self.closed = True
        for entry in list(self._entries.values()):
            await self._unload(entry)
