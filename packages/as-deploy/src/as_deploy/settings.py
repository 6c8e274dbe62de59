"""Settings of the model server: :class:`ServerSettings` and its sections.

They come from as-config, so every value can be set in a YAML/JSON/TOML file
(``as-deploy serve --config server.yaml``), in the environment with the prefix
``AS_DEPLOY__`` (``__`` nests: ``AS_DEPLOY__BATCHING__MAX_BATCH_SIZE=64``), or by the
command line's options, which win over both::

    repo: models
    preload: [digits-cnn]
    max_loaded_models: 2
    batching: {enabled: true, max_batch_size: 32, max_wait_ms: 2}
    limits: {max_body_bytes: 1048576, max_concurrency: 64, request_timeout_s: 30}
    drain_grace_s: 5
    runtime: {intra_op_threads: 2}

This module imports only pydantic, as-config and as-core, so reading settings stays cheap.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings, ConfigSection
from as_core.runtime import RuntimeOptions
from as_deploy.manifest import check_name

__all__ = [
    "BatchingSettings",
    "LimitsSettings",
    "RuntimeSettings",
    "ServerSettings",
    "parse_model_ref",
]

_PositiveInt = Annotated[int, Field(ge=1)]


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``"name"`` or ``"name:version"`` into the name and the version (or ``None``).

    Raises:
        InvalidNameError: The name or the version is not valid.
    """
    name, _, version = ref.partition(":")
    check_name(name)
    if version:
        check_name(version, "version")
        return name, version
    return name, None


class BatchingSettings(ConfigSection):
    """Dynamic batching: requests for one model are run together.

    Attributes:
        enabled: Whether to batch; when off, each request runs on its own.
        max_batch_size: Most rows one inference holds (a bigger request runs alone).
        max_wait_ms: How long the first request of a batch waits for company.
        max_queue_size: Most requests waiting per model; more get 503 at once.
        max_concurrent_batches: Most batches of one model running at once. ``1`` runs
            one at a time: requests that arrive while it runs wait for it, then go
            together. More lets the next batch start while one runs.
    """

    enabled: bool = True
    max_batch_size: _PositiveInt = 32
    max_wait_ms: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 2.0
    max_queue_size: _PositiveInt = 1024
    max_concurrent_batches: _PositiveInt = 1


class LimitsSettings(ConfigSection):
    """Limits that keep one client from taking the server down.

    Attributes:
        max_body_bytes: Largest request body, counted as it streams in (413 above it).
        max_elements: Most tensor elements in one request, all inputs together (413).
        max_json_depth: Deepest nesting of arrays and objects in a request body (400).
        max_concurrency: Most predictions in flight at once; more get 503 with
            ``Retry-After`` at once.
        request_timeout_s: How long a prediction may wait and run (504 after it).
        retry_after_s: The ``Retry-After`` value sent with a 503.
        header_timeout_s: How long a client has to send a request's line and headers,
            counted from the connection's start or the end of the previous response;
            then a partial request gets 408 and the connection is closed (a connection
            that sent nothing is closed without an answer).
        body_timeout_s: How long a client has to send a request's body once its headers
            are in; then the request gets 408 and the connection is closed. The body is
            read before the request counts against ``max_concurrency``.
    """

    max_body_bytes: _PositiveInt = 1024 * 1024
    max_elements: _PositiveInt = 1_000_000
    max_json_depth: Annotated[int, Field(ge=2, le=10_000)] = 32
    max_concurrency: _PositiveInt = 64
    request_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    retry_after_s: _PositiveInt = 1
    header_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0


class RuntimeSettings(ConfigSection):
    """How models run.

    Attributes:
        intra_op_threads: ONNX Runtime threads inside one operator (and the LiteRT
            interpreter's threads); ``None`` lets the runtime choose.
        inter_op_threads: ONNX Runtime threads across operators; ``None`` lets it choose.
        inference_workers: Threads that run inferences (all models together).
        providers: ONNX Runtime execution providers in order of preference; ``None``
            uses the CPU provider.
        spin_wait: Let ONNX Runtime's idle threads spin waiting for work (off: in a
            server they take CPU from request parsing; see the benchmark in the README).
        inline_below_ms: A model whose last 16 inferences each took less than this runs
            its next ones on the event loop's thread instead of in the pool (handing
            work to a thread and back costs more than a small model's inference); one
            slower inference sends it back to the pool. 0 keeps every model in the pool.
    """

    intra_op_threads: _PositiveInt | None = None
    inter_op_threads: _PositiveInt | None = None
    inference_workers: _PositiveInt = 4
    providers: list[str] | None = None
    spin_wait: bool = False
    inline_below_ms: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.5

    def options(self) -> RuntimeOptions:
        """The :class:`as_core.runtime.RuntimeOptions` every runner opens its model with."""
        options = RuntimeOptions(
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            spin_wait=self.spin_wait,
        )
        if self.providers:
            options = replace(options, providers=tuple(self.providers))
        return options


class ServerSettings(AsSettings):
    """Everything the model server can be told.

    Attributes:
        repo: The model repository; ``None`` serves the default model shipped in the
            package.
        host: Interface to listen on.
        port: TCP port to listen on.
        workers: Server processes sharing the port (``as-deploy serve`` only; an app
            made with ``create_app`` is one process). Each loads its own copy of the
            models and batches on its own; ``/metrics`` sums over all of them.
        http: The HTTP/1.1 parser of ``as-deploy serve``: ``httptools`` (a C parser, on
            uvloop's event loop where uvloop is installed), ``h11`` (pure Python, on
            asyncio's loop), or ``auto``: httptools and uvloop when both are installed
            (they come with as-deploy), else h11. Both give the same answers, deadlines,
            JSON errors and draining; httptools 1.5 times the requests per second.
        log_level: Level of the server's logs.
        preload: Models to load at start, as ``"name"`` (latest) or ``"name:version"``;
            ``/ready`` answers 503 until they are loaded. ``None`` preloads every model's
            latest version (up to ``max_loaded_models``) and ignores those that fail.
        max_loaded_models: Most model versions kept loaded; the least recently used idle
            one is unloaded to make room.
        drain_grace_s: On SIGTERM, how long the server goes on accepting and serving
            everything while ``/ready`` answers 503, so that a load balancer sees it and
            sends no more; then it stops accepting. ``0`` stops accepting at once; Ctrl-C
            (SIGINT) and a second signal skip the rest of it.
        graceful_timeout_s: How long a shutdown waits for the requests it took in, after
            it stops accepting.
        access_log: Whether to log one structured line per request.
        batching: Dynamic batching.
        limits: Request limits.
        runtime: Model runtimes.
        min_residency_s: How long a loaded version stays before it may be unloaded to make
            room for another. A request that needs room sooner (every loaded version idle
            but loaded less than this ago) gets 503 with ``Retry-After`` rather than
            unloading one: versions are never loaded and unloaded request after request.
        max_concurrent_loads: Model versions verified or loaded at once; more wait.
        model_load_timeout_s: How long verifying and loading one version may take. A
            request waiting longer gets 409 (``load_timeout``) while the load goes on in
            the background; 503 if it is still waiting for its turn to load.
    """

    model_config = SettingsConfigDict(env_prefix="AS_DEPLOY__")

    repo: Path | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: _PositiveInt = 1
    http: Literal["auto", "httptools", "h11"] = "auto"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    preload: list[str] | None = None
    max_loaded_models: _PositiveInt = 4
    drain_grace_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    graceful_timeout_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    access_log: bool = True
    batching: BatchingSettings = BatchingSettings()
    limits: LimitsSettings = LimitsSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    min_residency_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0
    max_concurrent_loads: _PositiveInt = 2
    model_load_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 120.0

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("preload")
    @classmethod
    def _valid_refs(cls, value: list[str] | None) -> list[str] | None:
        for ref in value or []:
            parse_model_ref(ref)
        return value
