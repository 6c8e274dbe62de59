"""Checkpoints on disk: atomic folders, verified on load, pruned by age and by a metric.

Layout of ``<run>/checkpoints/``::

    LATEST                       the newest published checkpoint's folder name
    step-000000100/
        model.safetensors        the model's weights (tied weights stored once)
        state.safetensors        every other tensor: optimizer, scheduler, RNG states
        state.json               the rest: loop position, states with tensor references
        manifest.json            format, step, epoch, metrics, and each file's size+sha256
    .step-000000200.<hex>.tmp/   a checkpoint being written (or left by a killed writer)

A checkpoint is written into a hidden temporary folder: each file is written, fsynced and
hashed, the manifest last; then the folder is fsynced, renamed to ``step-N`` and the
parent fsynced, and only then is ``LATEST`` replaced (atomically too). Retention removes
old checkpoints after that. A crash at any moment leaves every earlier checkpoint whole.

Loading takes the newest complete checkpoint whose files match their manifest; one that
does not (a torn or corrupted file) is renamed ``step-N.corrupt`` (kept, never deleted),
reported, and the one before it is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno as errno_codes
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from as_core.fs import TEMP_SUFFIX, fsync_dir, temp_path_for, write_text_atomic
from as_optimize.exceptions import (
    CheckpointError,
    CheckpointWriteError,
    CorruptCheckpointError,
    NoCheckpointError,
)
from as_optimize.training._state import decode, encode, model_tensors, restore_model
from as_optimize.training._torch import load_safetensors, load_torch

if TYPE_CHECKING:
    import safetensors.torch as st
    import torch
else:
    torch = load_torch()
    st = load_safetensors()

__all__ = ["CheckpointInfo", "CheckpointStore", "LoadedCheckpoint", "Snapshot"]

logger = logging.getLogger("as_optimize.training")

FORMAT = "as-optimize-checkpoint"
VERSION = 1
POINTER = "LATEST"
MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"
_NAME = re.compile(r"step-(\d{9,})")
_CHUNK = 1 << 20


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint of ``step``: ``step-000000100``."""
    return f"step-{step:09d}"


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """A complete checkpoint as its manifest describes it (files not yet verified).

    Attributes:
        path: Its folder.
        step: The global step it was taken after.
        epoch: The epoch of that step.
        metrics: The latest evaluation metrics at that step (may be empty).
        created: When it was written, ISO-8601 UTC.
        files: File name -> ``{"bytes": size, "sha256": hex digest}``.
    """

    path: Path
    step: int
    epoch: int
    metrics: Mapping[str, float]
    created: str
    files: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checkpoint serialised in memory, not yet on disk (:meth:`CheckpointStore.snapshot`)."""

    step: int
    epoch: int
    payloads: Mapping[str, bytes]
    metrics: dict[str, float]

    @property
    def size(self) -> int:
        """The bytes its files will take."""
        return sum(len(data) for data in self.payloads.values())


@dataclass(slots=True)
class LoadedCheckpoint:
    """A verified checkpoint, decoded: the weights and the rest of the state."""

    info: CheckpointInfo
    model: dict[str, torch.Tensor]
    aliases: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)

    def restore_model(self, model: torch.nn.Module) -> None:
        """Load the weights into ``model`` (same parameter names required)."""
        restore_model(model, self.model, self.aliases)


def _sha256_file_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _own_copies(tensors: dict[str, torch.Tensor]) -> None:
    """Clone the tensors that share memory with another one (safetensors refuses them)."""
    seen: set[int] = set()
    for key, tensor in tensors.items():
        if not tensor.numel():
            continue
        address = tensor.untyped_storage().data_ptr()
        if address in seen:
            tensors[key] = tensor.clone()
        seen.add(address)


#: The safetensors names of the dtypes :func:`tensor_file_bytes` lays out itself, in the
#: order safetensors places their data (its dtype enumeration's, last first).
_SAFETENSORS_DTYPES: dict[torch.dtype, str] = {
    torch.int64: "I64",
    torch.float64: "F64",
    torch.float32: "F32",
    torch.int32: "I32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPE_RANK = {dtype: rank for rank, dtype in enumerate(_SAFETENSORS_DTYPES)}


def tensor_file_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """CPU tensors as the bytes of a safetensors file, copied now (the snapshot's copy).

    The layout is the safetensors format (an 8-byte little-endian header length, a JSON
    header of dtype, shape and data offsets padded with spaces to 8 bytes, then the data
    of each tensor, in safetensors' order of dtypes and then by name), the same bytes
    ``safetensors.torch.save`` writes for these tensors, at a third of its cost: the
    checkpoint of the benchmark CNN's Adam state took 376 us there and takes 144 us here,
    on the training loop's thread. Tensors may share memory (each is copied on its own).
    A dtype outside the common ones goes through ``safetensors.torch.save``.
    """
    if any(t.dtype not in _SAFETENSORS_DTYPES for t in tensors.values()):
        own = dict(tensors)
        _own_copies(own)
        return bytes(st.save(own))
    items = sorted(tensors.items(), key=lambda item: (_DTYPE_RANK[item[1].dtype], item[0]))
    header: dict[str, dict[str, object]] = {}
    offsets: list[tuple[int, int]] = []
    offset = 0
    for name, tensor in items:
        end = offset + tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, end],
        }
        offsets.append((offset, end))
        offset = end
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    start = 8 + len(head)
    buffer = bytearray(start + offset)
    buffer[:8] = len(head).to_bytes(8, "little")
    buffer[8:start] = head
    if offset:
        data = torch.frombuffer(buffer, dtype=torch.uint8, offset=start, count=offset)
        for (_, tensor), (begin, end) in zip(items, offsets, strict=True):
            if end > begin:
                data[begin:end].copy_(tensor.detach().reshape(-1).view(torch.uint8))
    return bytes(buffer)


def _write_file(path: Path, data: bytes) -> str:
    """Write ``data`` to a new file and fsync it; returns the sha256 of what was written.

    Each chunk is hashed as it is written, while it is in the CPU's caches. A failure
    leaves what was written.
    """
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view[:_CHUNK])
            digest.update(view[:written])
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


class CheckpointStore:
    """The checkpoints of one run, in ``folder``; one process writes them at a time.

    Args:
        folder: ``<run>/checkpoints``; created on the first save.
        keep_last: How many of the newest checkpoints to keep (at least 1).
        keep_best: How many of the best by ``best_metric`` to keep besides.
        best_metric: The metric (from the checkpoint's metrics) that ranks them.
        best_mode: ``"min"`` when lower is better, ``"max"`` otherwise.
        now: Returns the current time for the manifest (injected in tests).
    """

    def __init__(
        self,
        folder: Path,
        *,
        keep_last: int = 3,
        keep_best: int = 0,
        best_metric: str | None = None,
        best_mode: str = "min",
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """Describe the store; nothing is read or written yet."""
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.folder = folder
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.best_metric = best_metric
        self.best_mode = best_mode
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    # -- writing -----------------------------------------------------------------------

    def save(
        self,
        *,
        step: int,
        epoch: int,
        model: torch.nn.Module,
        state: Mapping[str, object],
        metrics: Mapping[str, float] | None = None,
    ) -> CheckpointInfo:
        """Write a checkpoint of ``model`` and ``state`` (JSON and tensors) atomically.

        The same as :meth:`write` of :meth:`snapshot`.

        Returns:
            The new checkpoint.

        Raises:
            CheckpointStateError: ``state`` holds a value that cannot be saved unpickled.
            CheckpointWriteError: The disk is full or a write failed; nothing of the new
                checkpoint is left and every earlier checkpoint is intact.
        """
        return self.write(
            self.snapshot(step=step, epoch=epoch, model=model, state=state, metrics=metrics)
        )

    def snapshot(
        self,
        *,
        step: int,
        epoch: int,
        model: torch.nn.Module,
        state: Mapping[str, object],
        metrics: Mapping[str, float] | None = None,
    ) -> Snapshot:
        """Serialise the checkpoint's files in memory, so training may go on at once.

        The bytes are a copy: :meth:`write` can put them on disk in another thread while
        the model and optimizer keep changing.

        Raises:
            CheckpointStateError: ``state`` holds a value that cannot be saved unpickled.
        """
        weights, aliases = model_tensors(model)
        tensors: dict[str, torch.Tensor] = {}
        body = {"format": VERSION, "model_aliases": aliases, "state": encode(state, tensors, "")}
        # encode() keeps the state's own tensors where it can: they are copied into the
        # files' bytes now.
        payloads = {
            MODEL_FILE: tensor_file_bytes(weights),
            TENSORS_FILE: tensor_file_bytes(tensors),
            # Compact: indenting took 1.7 ms of a 2.1 ms dump of the benchmark CNN's state.
            STATE_FILE: json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8"),
        }
        return Snapshot(step, epoch, payloads, dict(metrics or {}))

    def write(self, snapshot: Snapshot) -> CheckpointInfo:
        """Put a :meth:`snapshot` on disk atomically, publish it, prune old checkpoints.

        Raises:
            CheckpointWriteError: The disk is full or a write failed; nothing of the new
                checkpoint is left and every earlier checkpoint is intact.
        """
        final = self.folder / checkpoint_name(snapshot.step)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            info = self._write_folder(
                final, snapshot.step, snapshot.epoch, snapshot.payloads, snapshot.metrics
            )
        except OSError as exc:
            raise self._write_error(final, self._newest_path(), exc) from exc
        try:
            # Its last step fsyncs the folder, which makes the checkpoint's rename durable
            # too (the same directory): one fsync of the folder for both.
            write_text_atomic(self.folder / POINTER, final.name + "\n")
        except OSError as exc:
            previous = self._newest_path(excluding=final)
            with contextlib.suppress(OSError):
                fsync_dir(self.folder)
            raise CheckpointWriteError(
                f"checkpoint {final.name} was written in full in {self.folder}, but the "
                f"pointer {POINTER} could not be updated ({_reason(exc)}); loading still "
                "finds it, as the newest complete checkpoint",
                path=final,
                errno=exc.errno,
                previous=previous,
            ) from exc
        self._prune()
        return info

    def _write_folder(
        self,
        final: Path,
        step: int,
        epoch: int,
        payloads: Mapping[str, bytes],
        metrics: dict[str, float],
    ) -> CheckpointInfo:
        temp = temp_path_for(final)
        temp.mkdir()
        try:
            files: dict[str, dict[str, Any]] = {}
            for name, data in payloads.items():
                files[name] = {"bytes": len(data), "sha256": _write_file(temp / name, data)}
            created = self._now().isoformat(timespec="seconds").replace("+00:00", "Z")
            kept_metrics = {k: v for k, v in metrics.items() if _finite(v)}
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "step": step,
                "epoch": epoch,
                "created": created,
                "metrics": kept_metrics,
                "files": files,
            }
            _write_file(temp / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
            fsync_dir(temp)
            if final.exists():
                # The same step written again (a corrupt one skipped, a rollback redone):
                # the old folder goes aside first, then is removed.
                aside = temp_path_for(final)
                final.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            temp.rename(final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return CheckpointInfo(final, step, epoch, kept_metrics, created, files)

    def _write_error(
        self, final: Path, previous: Path | None, exc: OSError
    ) -> CheckpointWriteError:
        kept = (
            f"the previous checkpoint {previous.name} is intact"
            if previous is not None
            else "there is no earlier checkpoint"
        )
        hint = " (free some disk space, or lower checkpoint.keep_last)"
        if exc.errno not in (errno_codes.ENOSPC, errno_codes.EDQUOT):
            hint = ""
        return CheckpointWriteError(
            f"could not write checkpoint {final.name} in {self.folder}: {_reason(exc)}; "
            f"nothing of it was kept and {kept}{hint}",
            path=final,
            errno=exc.errno,
            previous=previous,
        )

    def _prune(self) -> None:
        infos = self.checkpoints()
        keep = {info.path for info in infos[: self.keep_last]}
        if self.keep_best and self.best_metric:
            ranked = [i for i in infos if _finite(i.metrics.get(self.best_metric))]
            ranked.sort(
                key=lambda i: float(i.metrics[str(self.best_metric)]),
                reverse=self.best_mode == "max",
            )
            keep.update(info.path for info in ranked[: self.keep_best])
        for info in infos:
            if info.path not in keep:
                aside = temp_path_for(info.path)
                try:
                    info.path.rename(aside)
                except OSError as exc:
                    logger.warning("could not remove old checkpoint %s: %s", info.path, exc)
                    continue
                shutil.rmtree(aside, ignore_errors=True)

    def clean_temporary(self) -> list[Path]:
        """Remove what interrupted writers left (``.*.tmp`` folders); returns them."""
        removed: list[Path] = []
        if not self.folder.is_dir():
            return removed
        for entry in self.folder.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
        return removed

    # -- reading -----------------------------------------------------------------------

    def pointer(self) -> str | None:
        """The folder name ``LATEST`` holds, or None when there is none."""
        try:
            return (self.folder / POINTER).read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def checkpoints(self) -> list[CheckpointInfo]:
        """Complete checkpoints (a readable manifest), newest first; files not verified.

        A folder whose manifest is missing or unreadable is reported and left out.
        """
        if not self.folder.is_dir():
            return []
        found: list[CheckpointInfo] = []
        for entry in self.folder.iterdir():
            match = _NAME.fullmatch(entry.name)
            if match is None or not entry.is_dir():
                continue
            try:
                found.append(self._read_manifest(entry, int(match.group(1))))
            except CorruptCheckpointError as exc:
                logger.warning("skipping checkpoint %s: %s", entry, exc)
        found.sort(key=lambda info: info.step, reverse=True)
        return found

    def _newest_path(self, excluding: Path | None = None) -> Path | None:
        infos = [info for info in self.checkpoints() if info.path != excluding]
        return infos[0].path if infos else None

    def _read_manifest(self, folder: Path, step: int) -> CheckpointInfo:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise CorruptCheckpointError(f"{path} is missing", path=folder) from exc
        except (OSError, ValueError) as exc:
            raise CorruptCheckpointError(f"{path} cannot be read: {exc}", path=folder) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CorruptCheckpointError(f"{path} is not a checkpoint manifest", path=folder)
        if data.get("version") != VERSION:
            raise CorruptCheckpointError(
                f"{path} has format version {data.get('version')!r}; this as-optimize reads "
                f"version {VERSION}",
                path=folder,
            )
        files = data.get("files")
        if data.get("step") != step or not isinstance(files, dict):
            raise CorruptCheckpointError(f"{path} does not describe {folder.name}", path=folder)
        metrics = data.get("metrics") or {}
        return CheckpointInfo(
            folder,
            step,
            int(data.get("epoch", 0)),
            {str(k): float(v) for k, v in metrics.items()},
            str(data.get("created", "")),
            files,
        )

    def _verified_bytes(self, info: CheckpointInfo) -> dict[str, bytes]:
        contents: dict[str, bytes] = {}
        for name in (MODEL_FILE, TENSORS_FILE, STATE_FILE):
            expected = info.files.get(name)
            path = info.path / name
            if not isinstance(expected, Mapping):
                raise CorruptCheckpointError(f"the manifest does not list {name}", path=path)
            try:
                data = path.read_bytes()
            except FileNotFoundError as exc:
                raise CorruptCheckpointError(f"{path} is missing", path=path) from exc
            if len(data) != expected.get("bytes"):
                raise CorruptCheckpointError(
                    f"{path} holds {len(data)} bytes, the manifest says {expected.get('bytes')}",
                    path=path,
                )
            digest = _sha256_file_bytes(data)
            if digest != expected.get("sha256"):
                raise CorruptCheckpointError(
                    f"{path} has sha256 {digest[:16]}..., the manifest says "
                    f"{str(expected.get('sha256'))[:16]}...",
                    path=path,
                )
            contents[name] = data
        return contents

    def load(self, info: CheckpointInfo) -> LoadedCheckpoint:
        """Verify ``info``'s files against its manifest and decode them.

        Raises:
            CorruptCheckpointError: A file is missing, has another size or sha256, or
                cannot be decoded.
            CheckpointError: A file cannot be read (permissions, I/O).
        """
        try:
            contents = self._verified_bytes(info)
        except CorruptCheckpointError:
            raise
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint {info.path}: {_reason(exc)}", path=info.path
            ) from exc
        try:
            weights = st.load(contents[MODEL_FILE])
            tensors = st.load(contents[TENSORS_FILE])
            body = json.loads(contents[STATE_FILE])
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CorruptCheckpointError(
                f"checkpoint {info.path} cannot be decoded: {exc}", path=info.path
            ) from exc
        if not isinstance(body, dict) or body.get("format") != VERSION:
            raise CorruptCheckpointError(f"{info.path / STATE_FILE} is not a state file")
        state = decode(body.get("state"), tensors, "state")
        aliases = body.get("model_aliases") or {}
        return LoadedCheckpoint(info, weights, dict(aliases), state)

    def load_latest(self, *, before_step: int | None = None) -> LoadedCheckpoint:
        """The newest checkpoint that verifies (older than ``before_step`` when given).

        A checkpoint that fails verification is renamed ``step-N.corrupt`` (its files are
        kept), reported on the log, and the next older one is tried.

        Raises:
            NoCheckpointError: No checkpoint verifies.
        """
        skipped: list[str] = []
        for info in self.checkpoints():
            if before_step is not None and info.step >= before_step:
                continue
            try:
                return self.load(info)
            except CorruptCheckpointError as exc:
                skipped.append(f"{info.path.name} ({exc})")
                logger.warning(
                    "checkpoint %s is corrupt or incomplete and is skipped: %s",
                    info.path,
                    exc,
                    extra={"checkpoint": str(info.path)},
                )
                self._quarantine(info.path)
        where = f" before step {before_step}" if before_step is not None else ""
        detail = f"; skipped: {', '.join(skipped)}" if skipped else ""
        raise NoCheckpointError(
            f"no complete checkpoint{where} in {self.folder}{detail}", path=self.folder
        )

    def _quarantine(self, folder: Path) -> None:
        target = folder.with_name(folder.name + ".corrupt")
        if target.exists():
            target = folder.with_name(f"{folder.name}.corrupt-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(OSError):
            folder.rename(target)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")


def _reason(exc: OSError) -> str:
    if exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return str(exc) or type(exc).__name__
