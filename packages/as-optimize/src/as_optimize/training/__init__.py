"""The training monitor: metrics, failure detection and exact resume for plain PyTorch loops.

::

    from as_optimize.training import Monitor, MonitorSettings, ResumableSampler, read_metrics

    with Monitor("runs/r1", model=model, optimizer=opt, sampler=sampler) as monitor:
        for epoch in monitor.epochs(10):
            for x, y in loader:
                ...
                if monitor.step(loss=loss, batch_size=len(x)).interrupt:
                    break
            monitor.evaluate({"val_loss": val_loss})
    frame = read_metrics("runs/r1")

Importing this module imports no torch: :class:`Monitor`, :class:`ResumableSampler` and
:class:`CheckpointStore` load it (and safetensors) on first use, and raise
:class:`~as_optimize.MissingExtraError` naming the ``training`` extra when it is missing;
:class:`MonitorCallback` (PyTorch Lightning) needs the ``lightning`` extra.
The settings, the detectors' events and the metrics reader need no torch.
"""

import typing as _typing

from as_core.lazy import lazy_exports as _lazy_exports
from as_optimize.training._events import Action, Decision, Event, EventKind, read_events
from as_optimize.training._metrics import export_metrics, read_metrics
from as_optimize.training._settings import (
    CheckpointSettings,
    DivergenceSettings,
    ExplodingGradientSettings,
    LeakSettings,
    MetricsSettings,
    MonitorSettings,
    NonFiniteSettings,
    OptimizeSettings,
    Policy,
    ProgressSettings,
    RollbackSettings,
    SlowdownSettings,
    StallSettings,
    TensorBoardSettings,
)

if _typing.TYPE_CHECKING:
    from as_optimize.training._checkpoint import CheckpointInfo, CheckpointStore, LoadedCheckpoint
    from as_optimize.training._lightning import MonitorCallback, MonitorCheckpointIO
    from as_optimize.training._monitor import Monitor, Stateful
    from as_optimize.training._sampler import ResumableSampler

_LAZY: dict[str, str] = {
    "CheckpointInfo": "as_optimize.training._checkpoint",
    "CheckpointStore": "as_optimize.training._checkpoint",
    "LoadedCheckpoint": "as_optimize.training._checkpoint",
    "Monitor": "as_optimize.training._monitor",
    "MonitorCallback": "as_optimize.training._lightning",
    "MonitorCheckpointIO": "as_optimize.training._lightning",
    "Stateful": "as_optimize.training._monitor",
    "ResumableSampler": "as_optimize.training._sampler",
}

__all__ = [
    "Action",
    "CheckpointInfo",
    "CheckpointSettings",
    "CheckpointStore",
    "Decision",
    "DivergenceSettings",
    "Event",
    "EventKind",
    "ExplodingGradientSettings",
    "LeakSettings",
    "LoadedCheckpoint",
    "MetricsSettings",
    "Monitor",
    "MonitorCallback",
    "MonitorCheckpointIO",
    "MonitorSettings",
    "NonFiniteSettings",
    "OptimizeSettings",
    "Policy",
    "ProgressSettings",
    "ResumableSampler",
    "RollbackSettings",
    "SlowdownSettings",
    "StallSettings",
    "Stateful",
    "TensorBoardSettings",
    "export_metrics",
    "read_events",
    "read_metrics",
]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, __all__)
