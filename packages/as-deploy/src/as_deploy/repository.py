"""The model repository: ``<root>/<name>/<version>/manifest.json`` plus the model files.

Reading is defensive: names and versions are checked against
:data:`~as_deploy.manifest.NAME_PATTERN` before the file system is touched, no symlink is
followed anywhere under the root (folders, manifest, files), every resolved path must stay
inside the root, only regular files are opened (a FIFO, socket or device is refused from
its ``lstat``, before any ``open`` could block), and each file's size and sha256 are
checked against the manifest (the ONNX runner then refuses a model that reads a file the
manifest does not list). Nothing is ever unpickled; torch weights, where needed, are
stored as safetensors.

Verifying is cached: a version whose manifest and files keep their identity (device,
inode, size, modification and change times, from ``lstat``) since they were verified is
not hashed again, and neither is one that failed, until one of its files changes. A file
rewritten within the same clock tick as its verification, with the same size, keeps its
identity; the cache cannot see that.

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
import threading
from collections import OrderedDict
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
    MAX_MANIFEST_BYTES,
    FileEntry,
    Manifest,
    check_name,
    read_manifest_bytes,
)

__all__ = ["LoadedModel", "ModelRepository", "sha256_file", "version_key"]

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Opening a FIFO for reading blocks until a writer comes; with O_NONBLOCK it returns at once
# (the fstat that follows refuses it). On a regular file the flag changes nothing.
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
DEFAULT_CACHE_SIZE = 64
"""How many versions a :class:`ModelRepository` remembers as verified (or failed)."""

# (device, inode, size, mtime_ns, ctime_ns): a file that keeps it was not changed.
_Identity = tuple[int, int, int, int, int]


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Return the sort key of ``version`` (see the module docstring for the order)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[._-]", version)
    )


def _open_regular(path: Path, expected: _Identity | None = None) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file (never blocks, never follows).

    O_NOFOLLOW closes the gap between the symlink check and the open for the last part,
    O_NONBLOCK keeps a FIFO put there meanwhile from blocking the open, and the ``fstat``
    refuses whatever is not a regular file. With ``expected``, the open file must be the
    one that was checked (same identity), or it changed in between.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symlink; symlinks are refused") from exc
        if exc.errno == errno.ENOENT:
            raise ModelNotFoundError(f"{path} was removed while it was being read") from exc
        raise RepositoryError(f"could not open {path}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(
                f"{path} is {_kind(info.st_mode)}, not a regular file; only regular files are read"
            )
        if expected is not None and _identity(info) != expected:
            raise RepositoryError(f"{path} changed while it was being verified; try again")
    except BaseException:
        os.close(fd)
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


@dataclass(frozen=True)
class _Verified:
    """What :meth:`ModelRepository.load` found for a version whose files had these identities."""

    manifest_id: _Identity
    manifest: Manifest | None  # None: the manifest itself was refused (error says why)
    files_id: tuple[_Identity, ...] | None
    model: LoadedModel | None
    error: RepositoryError | ManifestError | None


class ModelRepository:
    """Models stored as ``<root>/<name>/<version>/manifest.json`` plus their files.

    It is safe to use from several threads: one version is verified by one thread at a
    time, and the others then find it in the cache.

    Args:
        root: The repository's folder. It need not exist until :meth:`add` creates it.
        cache_size: How many versions to remember as verified or failed (see the module
            docstring); 0 hashes every file on every :meth:`load`.

    Attributes:
        root: The repository's folder.
        files_hashed: How many files this object has hashed to verify them (a
            :meth:`load` answered from the cache hashes none).
    """

    def __init__(self, root: Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Create a repository rooted at ``root``."""
        self.root = Path(root)
        self.files_hashed = 0
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], _Verified] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._version_locks: dict[tuple[str, str], threading.Lock] = {}

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

    def _child(
        self, root: Path, parent: Path, part: str, what: str, want: str = "folder"
    ) -> tuple[Path, os.stat_result]:
        """Return ``parent / part`` resolved and its ``lstat``.

        Refuses symlinks, escapes from ``root``, and anything that is not a folder
        (``want="folder"``) or a regular file (``want="file"``), from the ``lstat`` alone:
        nothing is opened.
        """
        path = parent / part
        try:
            info = path.lstat()
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"{what} not found: {path}") from exc
        except OSError as exc:
            raise RepositoryError(f"could not read {path}: {exc}") from exc
        if stat.S_ISLNK(info.st_mode):
            raise UnsafePathError(f"{what} {path} is a symlink; symlinks are refused")
        if want == "folder" and not stat.S_ISDIR(info.st_mode):
            raise ModelNotFoundError(f"{what} not found: {path} is {_kind(info.st_mode)}")
        if want == "file" and not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(
                f"{what} {path} is {_kind(info.st_mode)}, not a regular file; only regular "
                "files are read"
            )
        try:
            resolved = path.resolve(strict=True)
        except OSError as exc:
            raise RepositoryError(f"could not resolve {path}: {exc}") from exc
        if not resolved.is_relative_to(root):
            raise UnsafePathError(f"{what} {path} resolves to {resolved}, outside {root}")
        return resolved, info

    @staticmethod
    def _has_manifest(path: Path) -> bool:
        """Whether the folder ``path`` holds a manifest that is a regular file (``lstat``)."""
        try:
            info = os.lstat(path / MANIFEST_FILENAME)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode)

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
        with os.scandir(name_dir) as entries:
            for entry in entries:
                try:
                    check_name(entry.name, "version")
                except ValueError:
                    continue
                # DirEntry.is_dir without following: no stat on most file systems.
                if entry.is_dir(follow_symlinks=False) and self._has_manifest(Path(entry.path)):
                    versions.append(entry.name)
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
        name_dir, _ = self._child(root, root, name, "model")
        try:
            versions = self._scan(name_dir)
        except OSError as exc:
            raise RepositoryError(f"could not list {name_dir}: {exc}") from exc
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

    def version_dir(self, name: str, version: str) -> Path:
        """Return the folder of ``name``/``version`` after the checks :meth:`load` starts with.

        Only ``lstat`` is used: nothing is opened or read, so this is cheap (one version,
        where :meth:`versions` lists them all) and never blocks on a FIFO.

        Raises:
            InvalidNameError: ``name`` or ``version`` is not valid.
            ModelNotFoundError: The model, the version or its manifest is missing.
            UnsafePathError: A folder or the manifest is a symlink, or the manifest is not a
                regular file.
        """
        check_name(name)
        check_name(version, "version")
        root = self._resolved_root()
        directory, _, _ = self._locate(root, name, version)
        return directory

    def _locate(self, root: Path, name: str, version: str) -> tuple[Path, Path, os.stat_result]:
        """The version folder, its manifest and the manifest's ``lstat``."""
        name_dir, _ = self._child(root, root, name, "model")
        directory, _ = self._child(root, name_dir, version, f"version {name}/{version}")
        manifest_path, info = self._child(root, directory, MANIFEST_FILENAME, "manifest", "file")
        return directory, manifest_path, info

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load and verify a model version.

        A version verified before (or refused for what its files hold) whose manifest and
        files have not changed since is answered from the cache, without hashing.

        Args:
            name: The model's name.
            version: The version; ``None`` loads :meth:`latest`.

        Returns:
            The verified model: its manifest, folder and model file.

        Raises:
            InvalidNameError: ``name`` or ``version`` is not valid (checked before the
                file system is touched).
            ModelNotFoundError: The model, version or one of its files is missing.
            UnsafePathError: A folder or file on the way is a symlink, the manifest or a
                file is not a regular file (a FIFO, a socket, a device), or a path leads
                outside the repository.
            ManifestError: The manifest is not valid JSON or not a valid manifest, is over
                :data:`~as_deploy.manifest.MAX_MANIFEST_BYTES`, or names another model or
                version.
            IntegrityError: A file's size or sha256 does not match the manifest.
            RepositoryError: A file changed while it was being verified, or could not be
                read.
        """
        check_name(name)
        if version is not None:
            check_name(version, "version")
        root = self._resolved_root()
        if version is None:
            version = self.latest(name)
        directory, manifest_path, manifest_info = self._locate(root, name, version)
        key = (name, version)
        with self._version_lock(key):
            return self._load_locked(root, key, directory, manifest_path, manifest_info)

    def _version_lock(self, key: tuple[str, str]) -> threading.Lock:
        # Only versions that exist get a lock (their folder was found), so this stays small.
        with self._cache_lock:
            return self._version_locks.setdefault(key, threading.Lock())

    def _load_locked(
        self,
        root: Path,
        key: tuple[str, str],
        directory: Path,
        manifest_path: Path,
        manifest_info: os.stat_result,
    ) -> LoadedModel:
        manifest_id = _identity(manifest_info)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None and cached.manifest_id == manifest_id:
            if cached.manifest is None:
                assert cached.error is not None
                raise cached.error.with_traceback(None)
            manifest = cached.manifest
        else:
            cached = None
            try:
                manifest = self._read_manifest(key, manifest_path, manifest_id)
            except ManifestError as exc:
                self._remember(key, _Verified(manifest_id, None, None, None, exc))
                raise
        # Every file's lstat: cheap, refuses symlinks and non-regular files before any open.
        located = [self._locate_file(root, directory, entry) for entry in manifest.files]
        files_id = tuple(_identity(info) for _, info in located)
        if cached is not None and cached.files_id == files_id:
            if cached.model is not None:
                return cached.model
            assert cached.error is not None
            raise cached.error.with_traceback(None)
        try:
            for (path, info), entry in zip(located, manifest.files, strict=True):
                self._verify(path, _identity(info), entry)
        except (IntegrityError, UnsafePathError) as exc:
            # What the files hold: the same files give the same answer, so remember it.
            self._remember(key, _Verified(manifest_id, manifest, files_id, None, exc))
            raise
        model_path = directory / manifest.model_file.path
        model = LoadedModel(manifest=manifest, directory=directory, model_path=model_path)
        self._remember(key, _Verified(manifest_id, manifest, files_id, model, None))
        logger.debug("loaded %s/%s from %s", key[0], key[1], directory)
        return model

    def _remember(self, key: tuple[str, str], verified: _Verified) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[key] = verified
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _read_manifest(
        self, key: tuple[str, str], manifest_path: Path, manifest_id: _Identity
    ) -> Manifest:
        with _open_regular(manifest_path, manifest_id) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_MANIFEST_BYTES:
                raise ManifestError(
                    manifest_path,
                    f"the file is {size} bytes; a manifest may hold at most "
                    f"{MAX_MANIFEST_BYTES} bytes",
                )
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
        manifest = read_manifest_bytes(raw, manifest_path)
        name, version = key
        if (manifest.name, manifest.version) != (name, version):
            raise ManifestError(
                manifest_path,
                f"the manifest is for {manifest.name}/{manifest.version}, "
                f"but it is stored as {name}/{version}",
            )
        return manifest

    def _locate_file(
        self, root: Path, directory: Path, entry: FileEntry
    ) -> tuple[Path, os.stat_result]:
        path = directory
        parts = entry.path.split("/")
        what = f"file {entry.path!r} of {directory}"
        for part in parts[:-1]:
            path, _ = self._child(root, path, part, what)
        path, info = self._child(root, path, parts[-1], what, "file")
        if not path.is_relative_to(directory):
            raise UnsafePathError(f"file {entry.path!r} resolves outside {directory}")
        return path, info

    def _verify(self, path: Path, identity: _Identity, entry: FileEntry) -> None:
        if identity[2] != entry.size_bytes:
            # The size is known from the lstat: no need to read a byte.
            raise IntegrityError(
                f"{path}: size is {identity[2]} bytes, the manifest says {entry.size_bytes}"
            )
        try:
            with _open_regular(path, identity) as handle:
                with self._cache_lock:
                    self.files_hashed += 1
                digest, size = _hash_stream(handle)
                if _identity(os.fstat(handle.fileno())) != identity:
                    raise RepositoryError(f"{path} changed while it was being verified; try again")
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
