"""Thread settings: fixed when asked, recorded in every measurement."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THREAD_ENV_VARS", "child_thread_env", "thread_settings", "torch_threads"]

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_settings(requested: int | None) -> dict[str, int | str | None]:
    """The thread settings in force now.

    Keys: ``requested`` (``MeasureOptions.threads``), ``cpu_count``, ``cpu_affinity``
    (CPUs this process may run on; ``None`` where the OS does not say), each of
    :data:`THREAD_ENV_VARS` (its value, ``None`` when unset), and ``torch_intra_op`` /
    ``torch_inter_op`` when torch is already imported (it is never imported for this).
    """
    settings: dict[str, int | str | None] = {
        "requested": requested,
        "cpu_count": os.cpu_count(),
    }
    try:
        settings["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        settings["cpu_affinity"] = None
    for name in THREAD_ENV_VARS:
        settings[name] = os.environ.get(name)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        settings["torch_intra_op"] = int(torch.get_num_threads())
        settings["torch_inter_op"] = int(torch.get_num_interop_threads())
    return settings


@contextmanager
def torch_threads(threads: int | None) -> Iterator[bool]:
    """Set torch's intra-op threads for the block, if torch is imported; restore after.

    Yields:
        Whether torch's thread count was set.
    """
    torch = sys.modules.get("torch")
    if threads is None or torch is None or not hasattr(torch, "set_num_threads"):
        yield False
        return
    before = int(torch.get_num_threads())
    torch.set_num_threads(threads)
    try:
        yield True
    finally:
        torch.set_num_threads(before)


@contextmanager
def child_thread_env(threads: int | None) -> Iterator[None]:
    """Set :data:`THREAD_ENV_VARS` to ``threads`` in ``os.environ`` for the block.

    A spawned child copies the environment when it starts, so the parent sets it around
    ``Process.start()`` and restores it right after; the child's libraries then size
    their thread pools from it before any of them starts.
    """
    if threads is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    try:
        for name in THREAD_ENV_VARS:
            os.environ[name] = str(threads)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
