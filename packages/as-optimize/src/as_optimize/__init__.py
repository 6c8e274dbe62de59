"""as-optimize compresses models automatically, under quality gates, and watches training runs.

:mod:`as_optimize.training` watches a plain PyTorch training loop: per-step metrics,
failure detection with warn, stop or rollback policies, and atomic checkpoints that resume
a run exactly. :mod:`as_optimize.compress` (the ``as-optimize`` command) profiles a model
and searches ONNX Runtime int8 and fp16 candidates under a quality gate.
:func:`profile` and :func:`optimize` are the ``profile`` and ``run`` commands as
functions (``optimize(..., repo=DIR)`` hands the winner to an as-deploy model
repository); they load on first use. Importing ``as_optimize``, ``as_optimize.training``
or ``as_optimize.compress`` imports no torch.
"""

from typing import TYPE_CHECKING

from as_core.lazy import lazy_exports
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

if TYPE_CHECKING:
    from as_optimize.compress import Deployment, OptimizeResult, optimize, profile

# The compression API loads on first use: importing as_optimize stays as cheap as before.
_LAZY: dict[str, str] = {
    "Deployment": "as_optimize.compress",
    "OptimizeResult": "as_optimize.compress",
    "optimize": "as_optimize.compress",
    "profile": "as_optimize.compress",
}

__all__ = [
    "AsOptimizeError",
    "CheckpointError",
    "CheckpointStateError",
    "CheckpointWriteError",
    "CompressionError",
    "CompressionInputError",
    "CorruptCheckpointError",
    "Deployment",
    "MetricsFileError",
    "MissingExtraError",
    "MonitorInputError",
    "NoCheckpointError",
    "OptimizeResult",
    "__version__",
    "optimize",
    "profile",
]

__getattr__, _dir = lazy_exports(__name__, _LAZY, __all__)


def __dir__() -> list[str]:
    """The public names only (``__all__``), not the helpers this module imports."""
    return sorted(__all__)
