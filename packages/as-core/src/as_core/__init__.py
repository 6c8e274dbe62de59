"""as-core: the shared base of as-toolkit.

Each piece of infrastructure the packages share has its one home here: the command-line
error plumbing (:mod:`as_core.cli`), optional-extra checks (:mod:`as_core.extras`), atomic
writes (:mod:`as_core.fs`), human-readable figures (:mod:`as_core.fmt`), lazy public names
(:mod:`as_core.lazy`) and the inference runtime setup (:mod:`as_core.runtime`). Importing
``as_core`` imports none of typer, rich, onnxruntime or LiteRT.
"""

from __future__ import annotations

from as_core._version import __version__
from as_core.exceptions import AsCoreError, MissingExtraError, install_hint
from as_core.extras import first_missing, is_installed, require
from as_core.fmt import format_bytes, format_rate, format_seconds
from as_core.fs import (
    TEMP_SUFFIX,
    atomic_writer,
    fsync_dir,
    temp_path_for,
    write_bytes_atomic,
    write_text_atomic,
)
from as_core.lazy import lazy_exports

__all__ = [
    "TEMP_SUFFIX",
    "AsCoreError",
    "MissingExtraError",
    "__version__",
    "atomic_writer",
    "first_missing",
    "format_bytes",
    "format_rate",
    "format_seconds",
    "fsync_dir",
    "install_hint",
    "is_installed",
    "lazy_exports",
    "require",
    "temp_path_for",
    "write_bytes_atomic",
    "write_text_atomic",
]
