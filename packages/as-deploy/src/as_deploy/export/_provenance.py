"""Where an export came from: tool versions as installed, and the git commit if cheap."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["TOOLS", "git_commit", "tool_versions"]

#: The distributions whose installed versions every manifest records (when installed).
TOOLS: tuple[str, ...] = (
    "torch",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "coremltools",
    "litert-torch",
    "ai-edge-litert",
    "as-bench",
    "as-deploy",
)


def tool_versions() -> dict[str, str]:
    """``{distribution: version}`` for each of :data:`TOOLS` that is installed."""
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(where: Path | None = None, timeout: float = 5.0) -> str | None:
    """The commit checked out at ``where`` (the current directory), or ``None``.

    ``None`` when git is not installed, ``where`` is not in a checkout, or git does not
    answer within ``timeout`` seconds.
    """
    executable = shutil.which("git")
    if executable is None:
        return None
    try:
        done = subprocess.run(
            [executable, "rev-parse", "--verify", "HEAD"],
            cwd=where or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) in (40, 64) else None
