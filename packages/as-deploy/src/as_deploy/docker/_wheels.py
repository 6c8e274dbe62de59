"""The wheels an image installs as-deploy from: found, built with ``uv build``, copied.

With wheels, as-deploy and its workspace siblings are installed by direct file
reference, so that no index can stand in for them; their third-party dependencies
(onnxruntime, FastAPI, ...) still come from the index.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from as_core.fs import write_bytes_atomic
from as_deploy.docker._context import (
    _DEFAULT_WHEELS_FOLDER,
    _WHEEL_RE,
    WORKSPACE_PACKAGES,
    DockerContext,
    relative_in_context,
)
from as_deploy.exceptions import AsDeployError, UsageError

__all__ = ["build_wheels", "copy_wheels", "find_wheels", "with_wheels"]

logger = logging.getLogger(__name__)


def _dist_name(package: str) -> str:
    return package.replace("-", "_")


def find_wheels(folder: Path) -> tuple[str, ...]:
    """The wheel file names of the workspace packages in ``folder``, in dependency order."""
    if not folder.is_dir():
        raise UsageError(
            f"the wheels folder {folder} does not exist",
            hint="give a folder of wheels, or --build-wheels to build them",
        )
    by_dist: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir()):
        match = _WHEEL_RE.fullmatch(entry.name)
        if match is not None and entry.is_file() and not entry.is_symlink():
            by_dist.setdefault(match["dist"].lower(), []).append(entry.name)
    chosen: list[str] = []
    for package in WORKSPACE_PACKAGES:
        names = by_dist.get(_dist_name(package), [])
        if len(names) > 1:
            raise UsageError(
                f"{folder} holds {len(names)} wheels of {package}: {', '.join(names)}",
                hint="keep one wheel per package in the folder",
            )
        if names:
            chosen.append(names[0])
        elif package == "as-deploy":
            raise UsageError(
                f"{folder} holds no as-deploy wheel",
                hint="build one with `uv build --package as-deploy --wheel -o DIR`, "
                "or pass --build-wheels",
            )
        else:
            logger.warning(
                "%s holds no %s wheel; the image build takes it from the package index",
                folder,
                package,
            )
    return tuple(chosen)


def _find_workspace(start: Path) -> Path:
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text("utf-8"):
            return folder
    raise UsageError(
        f"no uv workspace (a pyproject.toml with [tool.uv.workspace]) at or above {start}",
        hint="run it inside the as-toolkit checkout, or build the wheels and pass --wheels",
    )


def build_wheels(dest: Path, *, workspace: Path | None = None) -> list[Path]:
    """Build wheels of as-deploy and its workspace siblings into ``dest`` with ``uv build``.

    Runs ``uv build --package <name> --wheel`` for each of :data:`WORKSPACE_PACKAGES`
    into a temporary folder, then replaces the older wheels of those packages in ``dest``
    with the new ones (so that ``dest`` holds one wheel per package).

    Args:
        dest: The folder for the wheels; created when missing.
        workspace: The uv workspace's root; found from the current folder upwards when
            ``None``.

    Returns:
        The new wheels, in dependency order.

    Raises:
        UsageError: No workspace was found, or uv is not installed.
        AsDeployError: ``uv build`` failed (the message holds its output's end).
    """
    root = Path(workspace) if workspace is not None else _find_workspace(Path.cwd())
    uv = shutil.which("uv")
    if uv is None:
        raise UsageError("uv is not installed", hint="install uv: https://docs.astral.sh/uv/")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=dest) as temp:
        for package in WORKSPACE_PACKAGES:
            command = [uv, "build", "--package", package, "--wheel", "--out-dir", temp]
            logger.info("building the %s wheel: %s", package, " ".join(command))
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-2000:]
                raise AsDeployError(
                    f"`uv build --package {package}` failed in {root} "
                    f"(exit {done.returncode}): {tail}"
                )
        built = [Path(temp) / name for name in find_wheels(Path(temp))]
        for package in WORKSPACE_PACKAGES:
            for old in dest.glob(f"{_dist_name(package)}-*.whl"):
                old.unlink()
        result = []
        for wheel in built:
            target = dest / wheel.name
            wheel.replace(target)
            result.append(target)
    return result


def with_wheels(plan: DockerContext, wheels: Path) -> DockerContext:
    """``plan`` installing as-deploy from the wheels in ``wheels``."""
    wheels = wheels.resolve()
    wheel_files = find_wheels(wheels)
    context = plan.context
    source = None
    if wheels.is_relative_to(context) and wheels != context:
        relative = relative_in_context(wheels, context, "wheels folder")
    else:
        relative, source = _DEFAULT_WHEELS_FOLDER, wheels
    if (context / relative).is_relative_to(context / plan.repo):
        raise UsageError(
            f"the wheels folder {context / relative} is inside the model repository",
            hint="keep the wheels in a folder of their own next to the repository",
        )
    return dataclasses.replace(plan, wheels=relative, wheel_files=wheel_files, wheels_source=source)


def copy_wheels(source: Path, dest: Path, names: Sequence[str]) -> None:
    """Copy the wheels ``names`` from ``source`` into ``dest``, each atomically (mode 644)."""
    for name in names:

        def copy(handle: IO[bytes], path: Path = source / name) -> None:
            with path.open("rb") as wheel:
                shutil.copyfileobj(wheel, handle)

        write_bytes_atomic(dest / name, copy, mode=0o644)
