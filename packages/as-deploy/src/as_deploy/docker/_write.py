"""Writing an image's build context: the Dockerfile, ``.dockerignore`` and the wheels."""

from __future__ import annotations

import logging
from pathlib import Path

from as_core.fs import write_text_atomic
from as_deploy.docker._context import (
    _DEFAULT_WHEELS_FOLDER,
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_TAG,
    DockerContext,
)
from as_deploy.docker._render import render, render_dockerignore
from as_deploy.docker._verify import check_target, prepare_docker_context
from as_deploy.docker._wheels import build_wheels, copy_wheels, with_wheels

__all__ = ["write_docker_context", "write_dockerfile"]

logger = logging.getLogger(__name__)


def write_docker_context(
    repo: Path,
    out: Path | None = None,
    *,
    port: int = DEFAULT_PORT,
    python: str = DEFAULT_PYTHON,
    wheels: Path | None = None,
    build: bool = False,
    tag: str = DEFAULT_TAG,
    force: bool = False,
    workspace: Path | None = None,
) -> DockerContext:
    """Write the Dockerfile and ``.dockerignore`` for ``repo``, and the wheels if asked.

    Args:
        repo: The model repository.
        out: The Dockerfile's path, or a folder for ``Dockerfile``; next to ``repo`` when
            ``None``. Its folder is the build context and must contain ``repo``.
        port: The server's port in the container.
        python: The base image's Python version.
        wheels: A folder of as-deploy's wheels; copied to ``<context>/wheels`` when it
            is outside the context. With ``build``, where to build them
            (``<context>/wheels`` when ``None``).
        build: Build the wheels first with :func:`build_wheels`.
        tag: The image name in the printed commands.
        force: Overwrite a Dockerfile or ``.dockerignore`` that as-deploy did not write
            (one it wrote is always replaced).
        workspace: The uv workspace for ``build``; found from the current folder when
            ``None``.

    Returns:
        The build context that was written.

    Raises:
        UsageError: A bad option, or a file in the way (see ``force``); and every error of
            :func:`prepare_docker_context`.
    """
    # Check everything that needs no build before building wheels or writing anything.
    plan = prepare_docker_context(repo, out, port=port, python=python, tag=tag)
    for target in (plan.dockerfile, plan.dockerignore):
        check_target(target, force)
    if build:
        wheels = plan.context / _DEFAULT_WHEELS_FOLDER if wheels is None else Path(wheels)
        build_wheels(wheels, workspace=workspace)
    if wheels is not None:
        plan = with_wheels(plan, Path(wheels))
        if plan.wheels_source is not None and plan.wheels is not None:
            copy_wheels(plan.wheels_source, plan.context / plan.wheels, plan.wheel_files)
    write_text_atomic(plan.dockerfile, render(plan))
    write_text_atomic(plan.dockerignore, render_dockerignore(plan))
    logger.info("wrote %s and %s", plan.dockerfile, plan.dockerignore)
    return plan


def write_dockerfile(
    repo: Path,
    out: Path | None = None,
    *,
    port: int = DEFAULT_PORT,
    python: str = DEFAULT_PYTHON,
    wheels: Path | None = None,
    build: bool = False,
    tag: str = DEFAULT_TAG,
    force: bool = False,
) -> Path:
    """Write the Dockerfile (and ``.dockerignore``) for ``repo``; return the Dockerfile.

    The same as :func:`write_docker_context`, which also says where everything went.

    Args:
        repo: The model repository.
        out: The Dockerfile's path, or a folder for it; next to ``repo`` when ``None``.
        port: The server's port in the container.
        python: The base image's Python version.
        wheels: A folder of as-deploy's wheels; ``None`` installs from the index.
        build: Build the wheels first (``uv build``; see :func:`build_wheels`).
        tag: The image name in the header's commands.
        force: Overwrite a Dockerfile or ``.dockerignore`` that as-deploy did not write.

    Returns:
        The Dockerfile's path.
    """
    return write_docker_context(
        repo, out, port=port, python=python, wheels=wheels, build=build, tag=tag, force=force
    ).dockerfile
