"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Content goes to a hidden temporary file in the target's folder (same file system, so the
rename is atomic), is flushed to disk, then renamed over the target; the folder is then
synced so that the rename itself survives a power cut. A failed write removes its
temporary file and leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "TEMP_SUFFIX",
    "atomic_writer",
    "fsync_dir",
    "temp_path_for",
    "write_bytes_atomic",
    "write_text_atomic",
]

#: Suffix of the temporary files; readers of a folder of records skip names ending in it.
TEMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries to disk, so that a rename into it is durable.

    Platforms that cannot open a folder (Windows) are skipped: there the rename is as
    durable as it gets.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(path: Path) -> Path:
    """A unique hidden name beside ``path`` for its temporary file or folder."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int | None = None) -> Iterator[IO[bytes]]:
    """Open a binary file whose content replaces ``path`` atomically when the block ends.

    Args:
        path: The file to create or replace.
        mode: Permissions for the new file; ``None`` keeps the umask's default.

    Yields:
        The temporary file, open for binary writing.

    Raises:
        OSError: The file could not be written; ``path`` is unchanged.
    """
    temp = temp_path_for(path)
    try:
        # "x": never reuse a name another writer holds.
        with temp.open("xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            temp.chmod(mode)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(
    path: Path, data: bytes | Callable[[IO[bytes]], None], *, mode: int | None = None
) -> Path:
    """Write ``data`` to ``path`` atomically; its folder is created if missing.

    Args:
        path: The file to create or replace.
        data: The bytes, or a function that writes them to the binary file it is given.
        mode: Permissions for the new file; ``None`` keeps the umask's default.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, mode=mode) as handle:
        if callable(data):
            data(handle)
        else:
            handle.write(data)
    return path


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` (UTF-8, Unix line ends) to ``path`` atomically.

    Readers never see half a file; of two writers, the last rename wins.

    Args:
        path: The file to write; its folder is created if missing.
        text: The content.
        mode: The file's permissions (``0o644``: readable by all; ``0o600``: owner only).
    """
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode)
