"""Verifying a repository and planning its image's build context, writing nothing.

Every version is loaded with :class:`~as_deploy.ModelRepository` (sha256s checked); the
repository, the Dockerfile and the wheels must fit in the build context (the
Dockerfile's folder) under names Docker's ``COPY`` takes safely.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence
from pathlib import Path

from as_deploy.docker._context import (
    _PYTHON_RE,
    _TAG_RE,
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_TAG,
    GENERATED_MARKER,
    DockerContext,
    ShippedVersion,
    relative_in_context,
)
from as_deploy.docker._wheels import with_wheels
from as_deploy.exceptions import (
    ModelNotFoundError,
    RepositoryError,
    UnsafePathError,
    UsageError,
)
from as_deploy.manifest import MANIFEST_FILENAME, check_name
from as_deploy.repository import ModelRepository, version_key

__all__ = ["check_dockerfile_target", "check_target", "prepare_docker_context"]

logger = logging.getLogger(__name__)


def _check_options(port: int, python: str, tag: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"invalid port {port!r}", hint="give a port from 1 to 65535")
    if not isinstance(python, str) or _PYTHON_RE.fullmatch(python) is None:
        raise UsageError(
            f"invalid Python version {python!r}",
            hint="give a minor version of 3.11 or later, like 3.11 or 3.12",
        )
    if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
        raise UsageError(
            f"invalid image name {tag!r}",
            hint="use lowercase letters, digits and '._/:@-', like as-deploy-models:1",
        )


def _resolve_repo(repo: Path) -> Path:
    repo = Path(repo)
    if repo.is_symlink():
        raise UnsafePathError(
            f"the model repository {repo} is a symlink; Docker copies the link, not the models"
        )
    if not repo.exists():
        raise ModelNotFoundError(f"the model repository {repo} does not exist")
    if not repo.is_dir():
        raise RepositoryError(f"the model repository {repo} is not a folder")
    return repo.resolve(strict=True)


def _entries(folder: Path, what: str) -> list[Path]:
    """The entries of ``folder`` to ship, refusing symlinks; hidden ones are left out."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # unfinished writes of the repository; .dockerignore keeps them out
        if entry.is_symlink():
            raise UnsafePathError(
                f"{what} {entry} is a symlink; symlinks are refused "
                "(Docker would copy the link, not what it points to)"
            )
        if not entry.is_dir():
            raise RepositoryError(
                f"{entry} is not a {what} folder; a repository holds only "
                "<name>/<version>/ folders (move other files out of it)"
            )
        found.append(entry)
    return found


def _verify_repository(repo: Path) -> list[ShippedVersion]:
    """Load and verify every version of ``repo`` (sha256s included); return them."""
    repository = ModelRepository(repo)
    found: list[ShippedVersion] = []
    for name_dir in _entries(repo, "model"):
        check_name(name_dir.name)
        versions = _entries(name_dir, "version")
        for version_dir in sorted(versions, key=lambda path: version_key(path.name)):
            check_name(version_dir.name, "version")
            if not (version_dir / MANIFEST_FILENAME).is_file():
                raise ModelNotFoundError(
                    f"{version_dir} has no {MANIFEST_FILENAME}; it is not a model version"
                )
            loaded = repository.load(name_dir.name, version_dir.name)
            _warn_unreadable(loaded.directory, [entry.path for entry in loaded.manifest.files])
            found.append(ShippedVersion(name_dir.name, version_dir.name, loaded.manifest.format))
    if not found:
        raise ModelNotFoundError(
            f"the model repository {repo} holds no model versions (<name>/<version>/manifest.json)"
        )
    return found


def _warn_unreadable(directory: Path, files: Sequence[str]) -> None:
    # COPY keeps the files' modes, and the server does not run as their owner.
    for relative in (MANIFEST_FILENAME, *files):
        mode = (directory / relative).stat().st_mode
        if not mode & stat.S_IROTH:
            logger.warning(
                "%s is not readable by other users; the server's user in the image cannot "
                "read it (chmod -R a+rX the repository)",
                directory / relative,
            )


def _dockerfile_path(repo: Path, out: Path | None) -> Path:
    if out is None:
        return repo.parent / "Dockerfile"
    out = Path(out)
    if out.is_dir() and not out.is_symlink():
        out = out / "Dockerfile"
    parent = out.parent.resolve()
    return parent / out.name


def prepare_docker_context(
    repo: Path,
    out: Path | None = None,
    *,
    port: int = DEFAULT_PORT,
    python: str = DEFAULT_PYTHON,
    wheels: Path | None = None,
    tag: str = DEFAULT_TAG,
) -> DockerContext:
    """Verify ``repo`` and work out the build context of its image, writing nothing.

    Every version is loaded with :class:`~as_deploy.ModelRepository` (sha256s checked)
    before anything ships it.

    Args:
        repo: The model repository.
        out: The Dockerfile's path, or a folder for ``Dockerfile``; next to ``repo`` when
            ``None``. Its folder is the build context and must contain ``repo``.
        port: The server's port in the container.
        python: The base image's Python version (``3.11`` or later).
        wheels: A folder of wheels to install as-deploy from; ``None`` takes
            ``as-deploy==<this version>`` from the index. Wheels outside the context are
            to be copied to ``<context>/wheels``.
        tag: The image name in the printed commands.

    Returns:
        The build context.

    Raises:
        UsageError: A bad option, or the repository or wheels cannot be placed in the
            context, or every version is Core ML.
        ModelNotFoundError: The repository does not exist or holds no version.
        UnsafePathError: The repository or something in it is a symlink.
        InvalidNameError: A folder in the repository is not a valid name or version.
        ManifestError: A manifest is invalid.
        IntegrityError: A file's size or sha256 does not match its manifest.
    """
    _check_options(port, python, tag)
    root = _resolve_repo(repo)
    dockerfile = _dockerfile_path(root, out)
    context = dockerfile.parent
    if dockerfile.resolve().is_relative_to(root):
        raise UsageError(
            f"the Dockerfile {dockerfile} would be inside the model repository {root}",
            hint="write it next to the repository (the default) or above it",
        )
    repo_rel = relative_in_context(root, context, "model repository")
    found = _verify_repository(root)
    shipped = tuple(item for item in found if item.format != "coreml")
    skipped = tuple(item for item in found if item.format == "coreml")
    if not shipped:
        raise UsageError(
            f"the model repository {root} holds only Core ML models "
            f"({', '.join(item.path for item in skipped)}); a Linux container has no Core ML",
            hint="export the model to ONNX (as-deploy export --format onnx) to serve it "
            "in a container; serve Core ML on macOS with `as-deploy serve`",
        )
    for item in skipped:
        logger.warning(
            "%s is a Core ML model: it is left out of the image (a Linux container has no "
            "Core ML, MPS or Metal; serve it on macOS)",
            item.path,
        )
    plan = DockerContext(
        context=context,
        dockerfile=dockerfile,
        repo=repo_rel,
        shipped=shipped,
        skipped=skipped,
        port=port,
        python=python,
        tag=tag,
    )
    return plan if wheels is None else with_wheels(plan, Path(wheels))


def check_target(path: Path, force: bool) -> None:
    if path.is_symlink():
        raise UnsafePathError(f"{path} is a symlink; refusing to write through it")
    if path.exists() and not force:
        try:
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                head = handle.read(512)
        except OSError as exc:
            raise RepositoryError(f"could not read {path}: {exc}") from exc
        if GENERATED_MARKER not in head:
            raise UsageError(
                f"{path} exists and was not generated by as-deploy",
                hint="pass --force to overwrite it, or -o another path",
            )


def check_dockerfile_target(repo: Path, out: Path | None = None, *, force: bool = False) -> Path:
    """Check that a Dockerfile for ``repo`` can be written to ``out``; return its path.

    ``repo`` need not exist yet (``pack`` checks before exporting into it). Nothing is
    written.

    Raises:
        UsageError: The Dockerfile's folder does not contain ``repo``, the Dockerfile
            would be inside it, or a Dockerfile or ``.dockerignore`` that as-deploy did
            not write is in the way (and ``force`` is false).
        UnsafePathError: ``repo``, the Dockerfile or ``.dockerignore`` is a symlink.
    """
    repo = Path(repo)
    if repo.is_symlink():
        raise UnsafePathError(
            f"the model repository {repo} is a symlink; Docker copies the link, not the models"
        )
    root = repo.resolve()
    dockerfile = _dockerfile_path(root, out)
    if dockerfile.resolve().is_relative_to(root):
        raise UsageError(
            f"the Dockerfile {dockerfile} would be inside the model repository {root}",
            hint="write it next to the repository (the default) or above it",
        )
    relative_in_context(root, dockerfile.parent, "model repository")
    for target in (dockerfile, dockerfile.parent / ".dockerignore"):
        check_target(target, force)
    return dockerfile
