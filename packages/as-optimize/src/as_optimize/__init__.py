"""as-optimize compresses models automatically, under quality gates, and watches training runs.

:mod:`as_optimize.training` watches a plain PyTorch training loop: per-step metrics,
failure detection with warn, stop or rollback policies, and atomic checkpoints that resume
a run exactly. :mod:`as_optimize.compress` (the ``as-optimize`` command) profiles a model
and searches ONNX Runtime int8 and fp16 candidates under a quality gate. Importing
``as_optimize``, ``as_optimize.training`` or ``as_optimize.compress`` imports no torch.
"""

from as_optimize._version import __version__
from as_optimize.exceptions import (
    AsOptimizeError,
    CheckpointError,
    CheckpointStateError,
    CheckpointWriteError,
    CompressionError,
    CompressionInputError,
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
    "CompressionError",
    "CompressionInputError",
    "CorruptCheckpointError",
    "MetricsFileError",
    "MissingExtraError",
    "MonitorInputError",
    "NoCheckpointError",
    "__version__",
]
