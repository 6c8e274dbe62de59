"""Which source tree a result came from: commit, dirty flag and branch, read from ``git``."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from as_bench.results._schema import GitInfo

__all__ = ["git_info"]

logger = logging.getLogger(__name__)

_TIMEOUT_S = 10.0


def _git(args: list[str], cwd: Path, timeout: float) -> str | None:
    """Run ``git args`` in ``cwd``; its stdout, or ``None`` when it fails or hangs."""
    executable = shutil.which("git")
    if executable is None:
        return None
    env = dict(os.environ)
    # Don't take index.lock for `git status`: several benchmark processes may ask at once,
    # and a user's own git command must not fail because a benchmark was reading the tree.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run(
            [executable, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        logger.warning(
            "git %s in %s took over %.0f s; recording no git info", args[0], cwd, timeout
        )
        return None
    except OSError as exc:
        logger.debug("git %s in %s could not run: %s", args[0], cwd, exc)
        return None
    if done.returncode != 0:
        logger.debug("git %s in %s failed: %s", " ".join(args), cwd, done.stderr.strip())
        return None
    return done.stdout


def git_info(path: Path | None = None, *, timeout: float = _TIMEOUT_S) -> GitInfo | None:
    """The commit, dirty flag and branch of the git checkout that holds ``path``.

    Args:
        path: A file or folder inside the checkout; the current directory when ``None``.
        timeout: Seconds each ``git`` call may take.

    Returns:
        The checkout's state, or ``None`` when ``path`` is not in a git checkout, the
        checkout has no commit yet, ``git`` is not installed, or ``git`` did not answer
        in time.
    """
    where = Path.cwd() if path is None else Path(path)
    if where.is_file():
        where = where.parent
    if not where.is_dir():
        logger.debug("no git info: %s is not a folder", where)
        return None
    commit = _git(["rev-parse", "--verify", "HEAD"], where, timeout)
    if commit is None:
        return None
    # Untracked files don't count as dirty: result files and caches written next to the
    # code would otherwise mark every run after the first one dirty.
    status = _git(["status", "--porcelain", "--untracked-files=no"], where, timeout)
    if status is None:
        return None
    branch = _git(["symbolic-ref", "--short", "-q", "HEAD"], where, timeout)
    return GitInfo(
        commit=commit.strip(),
        dirty=bool(status.strip()),
        branch=(branch.strip() or None) if branch is not None else None,
    )
