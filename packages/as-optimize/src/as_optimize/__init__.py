"""as-optimize compresses models automatically, under quality gates, and watches training runs.

Compression, search and the training monitor arrive in the releases that follow; this
release fixes the package's name, version and error tree.
"""

from as_optimize._version import __version__
from as_optimize.exceptions import AsOptimizeError

__all__ = ["AsOptimizeError", "__version__"]
