"""Errors raised by as-bench.

Every error the package raises on purpose derives from :class:`AsBenchError`; each
subclass also derives from the built-in exception a caller would expect, so
``except ImportError`` still catches a missing extra::

    AsBenchError
    ├── MissingExtraError (ImportError)        an optional dependency is not installed
    ├── DeviceUnavailableError (RuntimeError)  the device does not exist on this machine
    ├── BackendError (RuntimeError)            a backend could not prepare or run a model
    │   └── OutputMismatchError (ValueError)   a backend's outputs differ from the reference
    ├── MeasurementError (RuntimeError)        the function under test failed or timed out
    ├── WorkloadError (ValueError)             a workload spec or factory is wrong
    ├── SuiteError (ValueError)                a suite file or flag combination is wrong
    ├── ThresholdError (ValueError)            a --fail-on expression or thresholds file is wrong
    ├── ProbeError (RuntimeError)              hardware facts could not be parsed
    └── ResultStoreError (OSError)             the result store could not be read or written
        ├── CorruptResultError (ValueError)    one stored result file is corrupt
        └── NothingToCompareError              a comparison side is missing or empty, or
                                               the sides have no benchmark in common
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import as_core

__all__ = [
    "AsBenchError",
    "BackendError",
    "CorruptResultError",
    "DeviceUnavailableError",
    "MeasurementError",
    "MissingExtraError",
    "NothingToCompareError",
    "OutputMismatchError",
    "ProbeError",
    "ResultStoreError",
    "SuiteError",
    "ThresholdError",
    "WorkloadError",
]


class AsBenchError(Exception):
    """Base class of every error as-bench raises on purpose."""


class MissingExtraError(AsBenchError, as_core.MissingExtraError):
    """An optional dependency is missing; the message names the command that installs it.

    ``MissingExtraError(module, extra)`` (and an optional ``feature``, what needed it);
    the message and :attr:`hint` name ``uv add "as-bench[<extra>]"``. It is also an
    :class:`as_core.MissingExtraError`, so code that handles any package's missing extra
    catches it, and an :class:`ImportError`.
    """

    package: ClassVar[str] = "as-bench"


class DeviceUnavailableError(AsBenchError, RuntimeError):
    """The requested device does not exist or cannot be used on this machine."""


class BackendError(AsBenchError, RuntimeError):
    """A backend could not prepare or run a model."""


class OutputMismatchError(BackendError, ValueError):
    """A backend's outputs differ from the reference backend's beyond the tolerance."""


class MeasurementError(AsBenchError, RuntimeError):
    """The function under measurement raised, or the measurement could not complete."""


class WorkloadError(AsBenchError, ValueError):
    """A workload spec (``pkg.module:factory``) or what its factory returned is wrong."""


class SuiteError(AsBenchError, ValueError):
    """A suite file or a combination of ``as-bench run`` flags is wrong."""


class ThresholdError(AsBenchError, ValueError):
    """A regression threshold (``--fail-on``), a thresholds file or a gate setting is wrong.

    The message names the bad text (and the file and key, for a thresholds file) and the
    forms that are accepted.
    """

    hint = "thresholds look like median:5%, mean:3%, p95:10% or median:2ms"


class ProbeError(AsBenchError, RuntimeError):
    """Hardware facts could not be read or parsed."""


class ResultStoreError(AsBenchError, OSError):
    """The result store could not be read or written."""


class CorruptResultError(ResultStoreError, ValueError):
    """One stored result file is corrupt or truncated; the others still load."""

    def __init__(self, path: Path, reason: str) -> None:
        """Name the corrupt file and say what is wrong with it."""
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NothingToCompareError(ResultStoreError):
    """A comparison had nothing to compare: a side is missing or empty, or no common name.

    That is, no benchmark is on both sides with samples to compare.
    A regression gate that compared nothing has checked nothing, so this is an error,
    never a pass: ``as-bench compare`` exits 4 with it, and the pytest plugin fails the
    session. The message names the path (or the benchmarks of each side).
    """

    hint = (
        "give a result store folder or a results file (.json, .csv, .parquet) written by "
        "`as-bench run` or `pytest --as-bench-store`, holding the same benchmark names"
    )
