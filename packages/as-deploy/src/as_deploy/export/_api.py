"""export_model and export_to_repository: convert, check parity, describe, store."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from as_deploy.exceptions import ExportError, UsageError, VersionExistsError
from as_deploy.export._extras import check_format
from as_deploy.export._formats import Converted
from as_deploy.export._options import (
    COMPUTE_UNITS,
    FORMATS,
    ExportOptions,
    Format,
    Precision,
)
from as_deploy.export._parity import (
    check_parity,
    default_tolerances,
    not_run_report,
    reference_outputs,
    run_batched,
)
from as_deploy.export._provenance import git_commit, tool_versions
from as_deploy.export._source import describe_source, load_source, parity_data
from as_deploy.manifest import (
    FileEntry,
    Manifest,
    ParityReport,
    Provenance,
    TensorSpec,
    check_name,
)
from as_deploy.repository import ModelRepository, sha256_file

__all__ = [
    "COMPUTE_UNITS",
    "FORMATS",
    "ExportOptions",
    "ExportResult",
    "ExportedModel",
    "Format",
    "Precision",
    "export_model",
    "export_to_repository",
]

logger = logging.getLogger(__name__)

# The top-level entry each format writes into out_dir.
_OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "onnx": ("model.onnx", "model.onnx.data"),
    "coreml": ("model.mlpackage",),
    "tflite": ("model.tflite",),
}


@dataclass(frozen=True)
class ExportedModel:
    """A model exported and checked, with everything its manifest needs but a name.

    Attributes:
        format: The format.
        directory: The folder its files were written to (``out_dir``).
        files: Manifest path (relative, POSIX) -> the file under ``directory``.
        roles: Manifest path -> role (``"model"``, ``"weights"``, ``"other"``).
        inputs: Input tensors, as the serving runtime reports them.
        outputs: Output tensors, as the serving runtime reports them.
        labels: Class labels in output order, if any.
        preprocessing: How to prepare inputs (JSON-compatible).
        parity: The parity report (checked and passed, or not run, with the reason).
        provenance: Source, creation time, tool versions, git commit.
        description: What the model does, in words.
        runtime_options: How the runtime should run it (see :class:`Manifest`).
    """

    format: Format
    directory: Path
    files: dict[str, Path]
    roles: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None
    preprocessing: dict[str, Any]
    parity: ParityReport
    provenance: Provenance
    description: str | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        """The file whose role is ``"model"``."""
        return next(self.files[p] for p, role in self.roles.items() if role == "model")

    def file_entries(self) -> list[FileEntry]:
        """The manifest's file list: each file's path, sha256, size and role."""
        return [
            FileEntry.model_validate(
                {
                    "path": relative,
                    "sha256": sha256_file(path),
                    "size_bytes": path.stat().st_size,
                    "role": self.roles[relative],
                }
            )
            for relative, path in sorted(self.files.items())
        ]

    def manifest(self, name: str, version: str) -> Manifest:
        """The manifest of this export stored as ``name``/``version``.

        Raises:
            InvalidNameError: ``name`` or ``version`` is not valid.
        """
        check_name(name)
        check_name(version, "version")
        return Manifest(
            name=name,
            version=version,
            format=self.format,
            inputs=self.inputs,
            outputs=self.outputs,
            labels=self.labels,
            preprocessing=self.preprocessing,
            files=self.file_entries(),
            provenance=self.provenance,
            parity=self.parity,
            description=self.description,
            runtime_options=self.runtime_options,
        )


@dataclass(frozen=True)
class ExportResult:
    """A version written to a repository.

    Attributes:
        manifest: Its manifest.
        directory: Its version folder (``<repo>/<name>/<version>``).
        exported: The export it came from (its files were in a temporary folder, now gone).
    """

    manifest: Manifest
    directory: Path
    exported: ExportedModel


def _converter(fmt: str) -> Callable[..., Converted]:
    if fmt == "onnx":
        from as_deploy.export._onnx import convert_onnx

        return convert_onnx
    if fmt == "coreml":
        from as_deploy.export._coreml import convert_coreml

        return convert_coreml
    from as_deploy.export._tflite import convert_tflite

    return convert_tflite


def _check_labels(given: tuple[str, ...] | None, outputs: list[TensorSpec]) -> list[str] | None:
    if given is None:
        return None
    labels = list(given)
    classes = outputs[0].shape[-1] if outputs[0].shape else None
    if classes is not None and classes != len(labels):
        raise UsageError(
            f"{len(labels)} labels for an output of {classes} classes "
            f"({outputs[0].name} {outputs[0].shape})",
            hint=f"give exactly {classes} labels, in output order",
        )
    return labels


def _run_parity(converted: Converted, workload: Any, options: ExportOptions) -> ParityReport:
    from as_bench.exceptions import BackendError
    from as_bench.export import load_torch_model

    fmt = options.format
    tolerances = default_tolerances(
        fmt, options.precision, workload.task, atol=options.atol, rtol=options.rtol
    )
    data = parity_data(workload, options.parity_inputs)
    if converted.run is None:
        reason = converted.not_run_reason or "the runtime cannot run here"
        logger.warning("%s parity check not run: %s", fmt, reason)
        return not_run_report(converted.runtime, reason, tolerances, data.description)
    try:
        model = load_torch_model(workload, "torch")
    except BackendError as exc:
        raise ExportError(str(exc)) from exc
    start = time.perf_counter()
    reference = reference_outputs(model, data.inputs)
    candidate = run_batched(converted.run, data.inputs, converted.batch_size)
    report = check_parity(
        reference,
        candidate,
        fmt=fmt,
        task=workload.task,
        tolerances=tolerances,
        runtime=converted.runtime,
        data=data.description,
    )
    logger.info(
        "%s parity passed on %d inputs in %.2f s: max abs error %.3g, top-1 agreement %s",
        fmt,
        len(data),
        time.perf_counter() - start,
        report.max_abs_error,
        report.top1_agreement,
    )
    return report


def _place(converted: Converted, out_dir: Path) -> dict[str, Path]:
    """Move the converted files into ``out_dir``, never over an existing one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tops = sorted({relative.split("/")[0] for relative in converted.files})
    for top in tops:
        if (out_dir / top).exists() or (out_dir / top).is_symlink():
            raise ExportError(f"{out_dir / top} exists; export into an empty folder")
    for top in tops:
        shutil.move(str(converted.staging / top), str(out_dir / top))
    return {relative: out_dir / relative for relative in converted.files}


def _options(options: ExportOptions | str) -> ExportOptions:
    return options if isinstance(options, ExportOptions) else ExportOptions.parse(format=options)


def export_model(
    source: str,
    options: ExportOptions | str,
    out_dir: Path,
    *,
    workdir: Path | None = None,
) -> ExportedModel:
    """Export ``source`` as ``options`` say into ``out_dir`` after checking parity with PyTorch.

    See :mod:`as_deploy.export` for the formats, the file layout and the tolerances.

    Args:
        source: An as-bench built-in workload (``digits-cnn``, ``mlp``, ``minilm``) or
            ``pkg.module:factory``.
        options: The format and everything else about the export and its parity check;
            a format name (``"onnx"``) takes the defaults for the rest.
        out_dir: Where the files go (created if missing); the format's file or package
            must not exist there yet. Nothing is written there if parity fails.
        workdir: Folder for intermediate files (a temporary folder inside it is used and
            removed); ``None`` uses the system's temporary folder.

    Returns:
        The exported model: its files in ``out_dir`` and everything its manifest needs.

    Raises:
        UsageError: A bad option (format, precision, compute units, tolerance, labels) or
            source spec.
        MissingExtraError: The format's extra is not installed (the hint is the
            ``uv add "as-deploy[...]"`` command).
        ExportError: Loading the source, converting or running the model failed.
        ParityError: The outputs differ beyond the tolerances (nothing is written).
    """
    options = _options(options)
    fmt = options.format
    out_dir = Path(out_dir)
    for top in _OUTPUT_NAMES[fmt]:
        if (out_dir / top).exists():
            raise UsageError(f"{out_dir / top} exists", hint="export into an empty folder")
    check_format(fmt)
    workload = load_source(source, fmt)
    about = describe_source(workload)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="as-deploy-export-", dir=workdir))
    try:
        start = time.perf_counter()
        converted = _converter(fmt)(
            workload,
            scratch,
            options,
            (about["input_description"], about["output_description"]),
        )
        logger.info("converted %s to %s in %.1f s", source, fmt, time.perf_counter() - start)
        try:
            parity = _run_parity(converted, workload, options)
        finally:
            converted.close()
        given = options.labels
        chosen_labels = _check_labels(
            given if given is not None else _labels(about["labels"]), converted.outputs
        )
        files = _place(converted, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ExportedModel(
        format=fmt,
        directory=out_dir,
        files=files,
        roles={relative: role for relative, (_, role) in converted.files.items()},
        inputs=converted.inputs,
        outputs=converted.outputs,
        labels=chosen_labels,
        preprocessing=about["preprocessing"],
        parity=parity,
        provenance=Provenance(
            source=source.strip(),
            created_at=datetime.now(UTC),
            tool_versions=tool_versions(),
            git_commit=git_commit(),
        ),
        description=(
            options.description if options.description is not None else workload.description
        ),
        runtime_options=converted.runtime_options,
    )


def _labels(found: list[str] | None) -> tuple[str, ...] | None:
    return None if found is None else tuple(found)


def export_to_repository(
    source: str,
    options: ExportOptions | str,
    repo: Path,
    *,
    name: str,
    version: str,
    workdir: Path | None = None,
) -> ExportResult:
    """Export ``source`` as ``options`` say, check parity, and add it to the repository ``repo``.

    Args:
        source: As for :func:`export_model`.
        options: As for :func:`export_model`.
        repo: The model repository's folder (created if missing).
        name: The model's name in the repository.
        version: The version to write; it must not exist yet.
        workdir: Folder for the temporary export; ``None`` uses the system's.

    Returns:
        The manifest and the version folder.

    Raises:
        InvalidNameError: ``name`` or ``version`` is not valid (checked first).
        VersionExistsError: The version exists (checked before exporting, and again
            atomically when writing; the existing version is never touched).
        ParityError: Parity failed; nothing is written to the repository.
        UsageError, MissingExtraError, ExportError: As for :func:`export_model`.
        RepositoryError: The version could not be written.
    """
    check_name(name)
    check_name(version, "version")
    options = _options(options)
    repository = ModelRepository(Path(repo))
    existing = Path(repo) / name / version
    if existing.exists() or existing.is_symlink():
        raise VersionExistsError(f"{name}/{version} already exists at {existing}")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="as-deploy-repo-", dir=workdir) as scratch:
        exported = export_model(
            source, options, Path(scratch) / "out", workdir=Path(scratch) / "work"
        )
        manifest = exported.manifest(name, version)
        directory = repository.add(manifest, exported.files)
    logger.info("wrote %s/%s (%s) to %s", name, version, options.format, directory)
    return ExportResult(manifest=manifest, directory=directory, exported=exported)
