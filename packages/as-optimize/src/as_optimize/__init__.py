"""as-optimize compresses models automatically, under quality gates, and watches training runs.

:mod:`as_optimize.training` watches a plain PyTorch training loop: per-step metrics,
failure detection with warn, stop or rollback policies, and atomic checkpoints that resume
a run exactly. Compression and search arrive in the releases that follow. Importing
``as_optimize`` or ``as_optimize.training`` imports no torch.
"""

from as_optimize._version import __version__
from as_optimize.exceptions import (
    AsOptimizeError,
    CheckpointError,
    CheckpointStateError,
    CheckpointWriteError,
    CorruptCheckpointError,
    MetricsFileError,
    MissingExtraError,
    MonitorInputError,
    NoCheckpointError,
)

__all__ = [
    "AsOptimizeError",
    "CheckpointError",
    "CheckpointStateError",
    "CheckpointWriteError",
    "CorruptCheckpointError",
    "MetricsFileError",
    "MissingExtraError",
    "MonitorInputError",
    "NoCheckpointError",
    "__version__",
]
