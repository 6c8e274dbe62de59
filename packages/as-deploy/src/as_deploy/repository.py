"""The model repository: ``<root>/<name>/<version>/manifest.json`` plus the model files.

Reading is defensive: names and versions are checked against
:data:`~as_deploy.manifest.NAME_PATTERN` before the file system is touched, no symlink is
followed anywhere under the root (folders, manifest, files), every resolved path must stay
inside the root, and each file's size and sha256 are checked against the manifest.
Nothing is ever unpickled; torch weights, where needed, are stored as safetensors.

Writing is atomic: :meth:`ModelRepository.add` fills a hidden temporary folder next to
the final one, then renames it into place, so a reader sees a whole version or none, and
of two writers of the same version exactly one wins.

Versions are ordered by :func:`version_key`: split on ``.``, ``_`` and ``-``; numeric parts
compare as numbers (``1.10`` after ``1.9``) and sort before text parts; text parts compare
as strings. It is not PEP 440, just predictable.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from as_core.fs import fsync_dir, temp_path_for
from as_deploy.exceptions import (
    IntegrityError,
    ManifestError,
    ModelNotFoundError,
    RepositoryError,
    UnsafePathError,
    VersionExistsError,
)
from as_deploy.manifest import (
    MANIFEST_FILENAME,
    FileEntry,
    Manifest,
    check_name,
    read_manifest_bytes,
)

__all__ = ["LoadedModel", "ModelRepository", "sha256_file", "version_key"]

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Return the sort key of ``version`` (see the module docstring for the order)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[._-]", version)
    )


def _open_nofollow(path: Path) -> IO[bytes]:
    # O_NOFOLLOW closes the gap between the symlink check and the open, for the last part.
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symlink; symlinks are refused") from exc
        raise
    return os.fdopen(fd, "rb")


def _hash_stream(handle: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """Return the lowercase hex sha256 of the file ``path``, read in chunks."""
    with Path(path).open("rb") as handle:
        return _hash_stream(handle)[0]


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version.

    Attributes:
        manifest: Its manifest.
        directory: Its version folder (resolved).
        model_path: The file whose role is ``"model"`` (resolved).
    """

    manifest: Manifest
    directory: Path
    model_path: Path

    def file(self, relative: str) -> Path:
        """Return the path of the manifest file entry ``relative``.

        Raises:
            KeyError: The manifest lists no such file.
        """
        if relative not in {entry.path for entry in self.manifest.files}:
            raise KeyError(relative)
        return self.directory / relative


class ModelRepository:
    """Models stored as ``<root>/<name>/<version>/manifest.json`` plus their files.

    Args:
        root: The repository's folder. It need not exist until :meth:`add` creates it.
    """

    def __init__(self, root: Path) -> None:
        """Create a repository rooted at ``root``."""
        self.root = Path(root)

    def __repr__(self) -> str:
        """Show the root."""
        return f"ModelRepository({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------

    def _resolved_root(self) -> Path:
        try:
            return self.root.resolve(strict=True)
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"the model repository {self.root} does not exist") from exc
        except OSError as exc:
            raise RepositoryError(
                f"could not open the model repository {self.root}: {exc}"
            ) from exc

    def _child(self, root: Path, parent: Path, part: str, what: str) -> Path:
        """Return ``parent / part`` resolved, refusing symlinks and escapes from ``root``."""
        path = parent / part
        try:
            info = path.lstat()
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"{what} not found: {path}") from exc
        except OSError as exc:
            raise RepositoryError(f"could not read {path}: {exc}") from exc
        if stat.S_ISLNK(info.st_mode):
            raise UnsafePathError(f"{what} {path} is a symlink; symlinks are refused")
        try:
            resolved = path.resolve(strict=True)
        except OSError as exc:
            raise RepositoryError(f"could not resolve {path}: {exc}") from exc
        if not resolved.is_relative_to(root):
            raise UnsafePathError(f"{what} {path} resolves to {resolved}, outside {root}")
        return resolved

    def _is_version_dir(self, path: Path) -> bool:
        manifest = path / MANIFEST_FILENAME
        return (
            not path.is_symlink()
            and path.is_dir()
            and not manifest.is_symlink()
            and manifest.is_file()
        )

    # -- reading -------------------------------------------------------------------------

    def list_models(self) -> list[tuple[str, str]]:
        """Return every ``(name, version)`` in the repository, sorted.

        Folders that are symlinks, hidden (unfinished writes) or badly named are skipped.
        An absent root holds no models.
        """
        if not self.root.is_dir():
            return []
        root = self._resolved_root()
        found: list[tuple[str, str]] = []
        for name_dir in sorted(root.iterdir()):
            if name_dir.is_symlink() or not name_dir.is_dir():
                continue
            try:
                check_name(name_dir.name)
            except ValueError:
                continue
            found.extend((name_dir.name, version) for version in self._scan(name_dir))
        return found

    def _scan(self, name_dir: Path) -> list[str]:
        versions = []
        for version_dir in name_dir.iterdir():
            try:
                check_name(version_dir.name, "version")
            except ValueError:
                continue
            if self._is_version_dir(version_dir):
                versions.append(version_dir.name)
        return sorted(versions, key=version_key)

    def versions(self, name: str) -> list[str]:
        """Return the versions of model ``name``, oldest first (see :func:`version_key`).

        Raises:
            InvalidNameError: ``name`` is not a valid name.
            ModelNotFoundError: There is no model ``name``.
            UnsafePathError: The model's folder is a symlink.
        """
        check_name(name)
        root = self._resolved_root()
        name_dir = self._child(root, root, name, "model")
        versions = self._scan(name_dir)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no versions in {root}")
        return versions

    def latest(self, name: str) -> str:
        """Return the newest version of model ``name`` (see :func:`version_key`).

        Raises:
            InvalidNameError: ``name`` is not a valid name.
            ModelNotFoundError: There is no model ``name``.
        """
        return self.versions(name)[-1]

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load and verify a model version.

        Args:
            name: The model's name.
            version: The version; ``None`` loads :meth:`latest`.

        Returns:
            The verified model: its manifest, folder and model file.

        Raises:
            InvalidNameError: ``name`` or ``version`` is not valid (checked before the
                file system is touched).
            ModelNotFoundError: The model, version or one of its files is missing.
            UnsafePathError: A folder or file on the way is a symlink, or a path leads
                outside the repository.
            ManifestError: The manifest is not valid JSON or not a valid manifest, or
                names another model or version.
            IntegrityError: A file's size or sha256 does not match the manifest.
        """
        check_name(name)
        if version is not None:
            check_name(version, "version")
        root = self._resolved_root()
        if version is None:
            version = self.latest(name)
        name_dir = self._child(root, root, name, "model")
        directory = self._child(root, name_dir, version, f"version {name}/{version}")
        manifest_path = self._child(root, directory, MANIFEST_FILENAME, "manifest")
        try:
            with _open_nofollow(manifest_path) as handle:
                raw = handle.read()
        except RepositoryError:
            raise
        except OSError as exc:
            raise RepositoryError(f"could not read {manifest_path}: {exc}") from exc
        manifest = read_manifest_bytes(raw, manifest_path)
        if (manifest.name, manifest.version) != (name, version):
            raise ManifestError(
                manifest_path,
                f"the manifest is for {manifest.name}/{manifest.version}, "
                f"but it is stored as {name}/{version}",
            )
        for entry in manifest.files:
            self._verify(root, directory, entry)
        model_path = directory / manifest.model_file.path
        logger.debug("loaded %s/%s from %s", name, version, directory)
        return LoadedModel(manifest=manifest, directory=directory, model_path=model_path)

    def _verify(self, root: Path, directory: Path, entry: FileEntry) -> Path:
        path = directory
        for part in entry.path.split("/"):
            path = self._child(root, path, part, f"file {entry.path!r} of {directory}")
        if not path.is_relative_to(directory):
            raise UnsafePathError(f"file {entry.path!r} resolves outside {directory}")
        try:
            with _open_nofollow(path) as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise UnsafePathError(f"{path} is not a regular file")
                digest, size = _hash_stream(handle)
        except RepositoryError:
            raise
        except OSError as exc:
            raise RepositoryError(f"could not read {path}: {exc}") from exc
        if size != entry.size_bytes:
            raise IntegrityError(
                f"{path}: size is {size} bytes, the manifest says {entry.size_bytes}"
            )
        if digest != entry.sha256:
            raise IntegrityError(f"{path}: sha256 is {digest}, the manifest says {entry.sha256}")
        return path

    # -- writing -------------------------------------------------------------------------

    def add(self, manifest: Manifest, files: dict[str, Path]) -> Path:
        """Store a new model version atomically.

        Args:
            manifest: The version's manifest; its ``files`` must list exactly the keys of
                ``files`` with their sizes and sha256s.
            files: Source file for each manifest path (``{"model.onnx": Path(...)}``).

        Returns:
            The new version's folder.

        Raises:
            ManifestError: ``files`` does not match the manifest's file list.
            IntegrityError: A source file's size or sha256 does not match the manifest.
            VersionExistsError: The version exists already (it is never overwritten).
            UnsafePathError: The model's folder is a symlink.
            RepositoryError: The files could not be written.
        """
        name = check_name(manifest.name)
        version = check_name(manifest.version, "version")
        entries = {entry.path: entry for entry in manifest.files}
        if set(files) != set(entries):
            missing = sorted(set(entries) - set(files))
            extra = sorted(set(files) - set(entries))
            raise ManifestError(
                None,
                f"files do not match the manifest of {name}/{version}: "
                f"missing {missing}, not in the manifest {extra}",
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RepositoryError(f"could not create {self.root}: {exc}") from exc
        root = self._resolved_root()
        name_dir = root / name
        if name_dir.is_symlink():
            raise UnsafePathError(f"model {name_dir} is a symlink; symlinks are refused")
        final = name_dir / version
        try:
            name_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise RepositoryError(f"could not create {name_dir}: {exc}") from exc
        if final.exists() or final.is_symlink():
            raise VersionExistsError(f"{name}/{version} already exists at {final}")
        temp = temp_path_for(final)
        try:
            temp.mkdir()
            for relative, source in files.items():
                self._copy(Path(source), temp / relative, entries[relative])
            with (temp / MANIFEST_FILENAME).open("x", encoding="utf-8") as handle:
                handle.write(manifest.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                # rename (not replace) fails on a non-empty target: one writer wins.
                temp.rename(final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or final.exists():
                    raise VersionExistsError(f"{name}/{version} already exists at {final}") from exc
                raise
        except RepositoryError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(temp, ignore_errors=True)
            raise RepositoryError(f"could not write {final}: {exc}") from exc
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        fsync_dir(name_dir)
        logger.info("added %s/%s at %s", name, version, final)
        return final

    @staticmethod
    def _copy(source: Path, target: Path, entry: FileEntry) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as src, target.open("xb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if size != entry.size_bytes:
            raise IntegrityError(
                f"{source} (for {entry.path!r}): size is {size} bytes, "
                f"the manifest says {entry.size_bytes}"
            )
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{source} (for {entry.path!r}): sha256 is {digest.hexdigest()}, "
                f"the manifest says {entry.sha256}"
            )
