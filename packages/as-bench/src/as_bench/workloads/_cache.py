"""Where as-bench keeps what it computes once: trained weights of the built-in workloads.

The folder is ``$AS_BENCH_CACHE_DIR`` when set, else the platform's user cache folder
(``~/Library/Caches/as-bench`` on macOS, ``$XDG_CACHE_HOME/as-bench`` or
``~/.cache/as-bench`` elsewhere). platformdirs would give the same answer; three lines do
not justify a dependency of the light core.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "cache_dir"]

CACHE_DIR_ENV = "AS_BENCH_CACHE_DIR"


def cache_dir() -> Path:
    """The folder for as-bench's cached files (not created here)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "as-bench"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "as-bench"
    return Path.home() / ".cache" / "as-bench"
