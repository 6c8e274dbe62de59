"""The store's temporary files: written in a hidden folder, named after their writer.

A result is written to ``<store>/.incoming/<pid>-<random>-<host>.tmp``, flushed to disk,
then renamed into the store, so a reader sees the whole file or none of it; the folder is
removed when the last write in flight leaves it. A writer
killed in between (``kill -9``, a power cut) leaves its temporary file behind; opening
the store removes such leftovers: those of this host whose process is gone, and any
older than :data:`STALE_AFTER_S` (a writer on another host, or one whose process id was
reused). Readers never look inside the hidden folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import uuid
from pathlib import Path

from as_core.fs import TEMP_SUFFIX, fsync_dir

__all__ = ["STAGING_FOLDER", "STALE_AFTER_S", "remove_leftovers", "write_result_file"]

logger = logging.getLogger(__name__)

STAGING_FOLDER = ".incoming"
"""The hidden folder of a store where results are written before they are renamed in."""

STALE_AFTER_S = 600.0
"""Age after which a temporary file is removed whoever wrote it; writing one takes
milliseconds."""

_CREATE_TRIES = 100
_HOST = re.sub(r"[^A-Za-z0-9._]+", "_", socket.gethostname()) or "host"
_NAME = re.compile(r"^(?P<pid>\d+)-[0-9a-f]+-(?P<host>.+)" + re.escape(TEMP_SUFFIX) + "$")


def _create_temp(folder: Path) -> tuple[Path, int]:
    """Create this writer's temporary file in ``folder``, making the folder if needed."""
    for _ in range(_CREATE_TRIES):
        # Not Path.mkdir(exist_ok=True): it raises when another writer removes the folder
        # between its mkdir and its check that the folder is there.
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        temp = folder / f"{os.getpid()}-{uuid.uuid4().hex}-{_HOST}{TEMP_SUFFIX}"
        try:
            # O_EXCL: never reuse a name another writer holds.
            return temp, os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileNotFoundError:  # another writer removed the empty folder meanwhile
            continue
    raise OSError(f"could not create a temporary file in {folder}: it kept disappearing")


def write_result_file(root: Path, name: str, content: bytes) -> Path:
    """Write ``content`` to ``root / name`` through a temporary file in the staging folder.

    The staging folder exists only while a write is in flight: the writer removes it
    when it is the last to leave it.

    Returns:
        The file written.

    Raises:
        OSError: It could not be written; ``root / name`` is unchanged and no temporary
            file is left.
    """
    folder = root / STAGING_FOLDER
    temp, fd = _create_temp(folder)
    target = root / name
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    finally:
        _remove_if_empty(folder)
    fsync_dir(root)
    return target


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: another write is in flight
        folder.rmdir()


def _process_is_gone(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there; age alone decides
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to someone else
        return False
    return False


def _is_leftover(path: Path, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except OSError:  # removed meanwhile: its writer finished
        return False
    if age > STALE_AFTER_S:
        return True
    match = _NAME.match(path.name)
    return (
        match is not None
        and match.group("host") == _HOST
        and int(match.group("pid")) != os.getpid()
        and _process_is_gone(int(match.group("pid")))
    )


def _is_old_leftover(path: Path, now: float) -> bool:
    if not (path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)):
        return False
    try:
        return path.is_file() and now - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def remove_leftovers(root: Path) -> int:
    """Remove the temporary files that writers killed mid-write left in the store ``root``.

    Also removes the hidden ``.<name>.<random>.tmp`` files that earlier versions wrote
    beside the results, once they are older than :data:`STALE_AFTER_S`. A store that
    cannot be changed (read-only) is left as it is.

    Returns:
        How many files were removed.
    """
    now = time.time()
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates += [p for p in (root / STAGING_FOLDER).iterdir() if _is_leftover(p, now)]
    with contextlib.suppress(OSError):
        candidates += [p for p in root.iterdir() if _is_old_leftover(p, now)]
    removed = 0
    for path in candidates:
        try:
            path.unlink()
        except OSError:
            continue
        removed += 1
    _remove_if_empty(root / STAGING_FOLDER)
    if removed:
        logger.info(
            "removed %d temporary file(s) that interrupted writers left in %s", removed, root
        )
    return removed
