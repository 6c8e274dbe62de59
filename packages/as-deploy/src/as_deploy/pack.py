"""Export, check parity, store and write the Dockerfile in one step: :func:`pack`.

::

    from as_deploy.pack import pack

    result = pack("digits-cnn", Path("models"), name="digits", version="1")
    result.versions[0].directory, result.docker.dockerfile

Names when packing several formats: the ONNX export keeps ``name``; each other format
gets ``<name>-<format>`` (``digits-tflite``, ``digits-coreml``), all with the same
``version``. A model name then always holds one format, so "the latest version of
``digits``" never switches runtime, and the rule does not depend on which formats one
``pack`` call happened to include.

All or nothing: every format is exported and parity-checked into a temporary repository
first; only when all of them passed are they added to ``repo`` (each version atomically),
and then the Dockerfile is written. A :class:`~as_deploy.exceptions.ParityError` (or any
export error) therefore leaves ``repo`` untouched. Whatever can be checked without
exporting (names, existing versions, the Dockerfile's place) is checked first.

Core ML models are exported (conversion runs anywhere; prediction and so the parity check
need macOS) but a Linux container cannot run them: the Dockerfile leaves them out, and
packing Core ML alone is refused.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from as_deploy.docker import (
    DockerContext,
    DockerOptions,
    check_dockerfile_target,
    write_docker_context,
)
from as_deploy.exceptions import UnsafePathError, UsageError, VersionExistsError
from as_deploy.export._options import FORMATS, ExportOptions, Format
from as_deploy.manifest import Manifest, check_name
from as_deploy.repository import ModelRepository

__all__ = ["PACK_FORMATS", "PackResult", "PackedVersion", "model_name_for", "pack"]

logger = logging.getLogger(__name__)

PACK_FORMATS: tuple[Format, ...] = FORMATS
"""The formats :func:`pack` exports."""


@dataclass(frozen=True)
class PackedVersion:
    """One version that :func:`pack` added to the repository.

    Attributes:
        format: Its format.
        manifest: Its manifest.
        directory: Its version folder.
    """

    format: str
    manifest: Manifest
    directory: Path


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack` wrote.

    Attributes:
        versions: The versions added, one per format, in the order asked.
        docker: The Dockerfile's build context (the Dockerfile, .dockerignore, what ships).
    """

    versions: tuple[PackedVersion, ...]
    docker: DockerContext


def model_name_for(name: str, fmt: str) -> str:
    """The repository name of ``fmt``'s export: ``name`` for ONNX, else ``<name>-<fmt>``.

    Raises:
        InvalidNameError: The result is not a valid model name (too long, for one).
    """
    return check_name(name if fmt == "onnx" else f"{name}-{fmt}")


def _check_formats(formats: Sequence[str]) -> list[Format]:
    chosen: list[Format] = []
    for name in formats:
        fmt = next((known for known in PACK_FORMATS if known == name), None)
        if fmt is None:
            raise UsageError(f"unknown format {name!r}", hint=f"use {', '.join(PACK_FORMATS)}")
        if fmt not in chosen:
            chosen.append(fmt)
    if not chosen:
        raise UsageError("no format to pack", hint="give --format onnx (or tflite, coreml)")
    if chosen == ["coreml"]:
        raise UsageError(
            "Core ML models cannot be served in a Linux container, so there is nothing to "
            "put in the image",
            hint="add --format onnx, or export Core ML alone with `as-deploy export` and "
            "serve it on macOS",
        )
    return chosen


def _check_free(repo: Path, names: dict[Format, str], version: str) -> None:
    if repo.is_symlink():
        raise UnsafePathError(f"the model repository {repo} is a symlink; symlinks are refused")
    for name in names.values():
        target = repo / name / version
        if target.exists() or target.is_symlink():
            raise VersionExistsError(f"{name}/{version} already exists at {target}")


def pack(
    source: str,
    repo: Path,
    *,
    name: str,
    version: str,
    formats: Sequence[str] = ("onnx",),
    options: ExportOptions | None = None,
    dockerfile: Path | None = None,
    docker: DockerOptions | None = None,
    force: bool = False,
    workdir: Path | None = None,
) -> PackResult:
    """Export ``source`` to each format, check parity, add it to ``repo``, write a Dockerfile.

    Args:
        source: The model: an as-bench built-in workload (``digits-cnn``, ``mlp``,
            ``minilm``) or ``pkg.module:factory`` (see :mod:`as_deploy.export`).
        repo: The model repository (created if missing).
        name: The model's name; other formats than ONNX get ``<name>-<format>``
            (see :func:`model_name_for`).
        version: The version to write for each format; none may exist yet.
        formats: The formats, ``"onnx"`` (default), ``"tflite"``, ``"coreml"``.
        options: How to export and check (precision, opset, tolerances, labels, ...);
            its ``format`` is replaced by each of ``formats``. Defaults when ``None``.
        dockerfile: The Dockerfile's path, or a folder for it; next to ``repo`` when
            ``None``. Its folder is the build context and must contain ``repo``.
        docker: The image's port, Python, wheels and tag; defaults when ``None``.
        force: Overwrite a Dockerfile or ``.dockerignore`` that as-deploy did not write.
        workdir: Where the temporary repository and intermediate files go; ``None`` uses
            the system's temporary folder.

    Returns:
        The versions added and the Dockerfile's build context.

    Raises:
        UsageError: A bad option, a Dockerfile in the way, or only Core ML asked for.
        InvalidNameError: ``name`` or ``version`` is not valid.
        VersionExistsError: A version exists already (checked before exporting).
        ParityError: An export's outputs differ from PyTorch's; nothing is written.
        MissingExtraError: The exporter a format needs is not installed.
        ExportError: An export failed; nothing is written.
    """
    from as_deploy.export import export_to_repository

    chosen = _check_formats(formats)
    base = options if options is not None else ExportOptions()
    per_format = {fmt: base.for_format(fmt) for fmt in chosen}  # checks each combination
    image = docker if docker is not None else DockerOptions()
    check_name(name)
    check_name(version, "version")
    names = {fmt: model_name_for(name, fmt) for fmt in chosen}
    repo = Path(repo)
    _check_free(repo, names, version)
    check_dockerfile_target(repo, dockerfile, force=force)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="as-deploy-pack-", dir=workdir) as scratch:
        staging = Path(scratch) / "repo"
        staged = []
        for fmt in chosen:
            logger.info("exporting %s to %s as %s/%s", source, fmt, names[fmt], version)
            result = export_to_repository(
                source,
                per_format[fmt],
                staging,
                name=names[fmt],
                version=version,
                workdir=Path(scratch) / "work",
            )
            staged.append((fmt, result.manifest, result.directory))
        # Every export passed its parity check: only now is the real repository touched.
        repository = ModelRepository(repo)
        packed = []
        for fmt, manifest, directory in staged:
            files = {entry.path: directory / entry.path for entry in manifest.files}
            final = repository.add(manifest, files)
            packed.append(PackedVersion(format=fmt, manifest=manifest, directory=final))
    context = write_docker_context(
        repo,
        dockerfile,
        port=image.port,
        python=image.python,
        wheels=image.wheels,
        build=image.build_wheels,
        tag=image.tag,
        force=force,
    )
    return PackResult(versions=tuple(packed), docker=context)
