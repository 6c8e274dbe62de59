"""as-bench measures ML models on Apple Silicon, Linux CPUs and NVIDIA GPUs.

The measurement engine, hardware probe, backends and result store arrive in the
releases that follow; this release fixes the package's name, version and error tree."""

from as_bench._version import __version__
from as_bench.exceptions import AsBenchError

__all__ = ["AsBenchError", "__version__"]
