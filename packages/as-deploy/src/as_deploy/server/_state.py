"""What one app holds while it runs: settings, repository, metrics, models, counters."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from as_deploy.repository import ModelRepository
from as_deploy.server._metrics import Metrics
from as_deploy.server._models import ModelManager
from as_deploy.settings import ServerSettings

__all__ = ["ServerState"]


@dataclass(eq=False)
class ServerState:
    """The app's running state (``app.state.server``).

    Attributes:
        settings: The server settings.
        repository: The model repository served.
        metrics: The app's Prometheus metrics.
        models: The model manager; ``None`` until the lifespan starts.
        executor: The inference thread pool; ``None`` until the lifespan starts.
        in_flight: Predict requests in flight now.
        arriving: Predict requests being read and checked, not yet handed to a model: the
            batchers wait for more rows only while some are on their way.
        draining: Set when a shutdown begins (``/ready`` answers 503 from then on).
        preload_task: The task loading the preload models.
    """

    settings: ServerSettings
    repository: ModelRepository
    metrics: Metrics = field(default_factory=Metrics)
    models: ModelManager | None = None
    executor: ThreadPoolExecutor | None = None
    in_flight: int = 0
    arriving: int = 0
    draining: bool = False
    preload_task: asyncio.Task[None] | None = None
