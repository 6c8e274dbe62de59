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
from typing import Any, Literal, get_args

from as_deploy.exceptions import ExportError, UsageError, VersionExistsError
from as_deploy.export._extras import check_format
from as_deploy.export._formats import Converted, FormatOptions
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
    "ExportResult",
    "ExportedModel",
    "Format",
    "Precision",
    "export_model",
    "export_to_repository",
]

logger = logging.getLogger(__name__)

Format = Literal["onnx", "coreml", "tflite"]
"""The export formats."""

Precision = Literal["fp32", "fp16"]
"""Compute precision: ``fp16`` is a Core ML option."""

FORMATS: tuple[str, ...] = get_args(Format)

#: Core ML compute units (``coremltools.ComputeUnit`` members) a model may be loaded with.
COMPUTE_UNITS: tuple[str, ...] = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")

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
            FileEntry(
                path=relative,
                sha256=sha256_file(path),
                size_bytes=path.stat().st_size,
                role=self.roles[relative],  # type: ignore[arg-type]
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


def _check_options(
    fmt: str,
    precision: str = "fp32",
    compute_units: str = "ALL",
    opset: int = 18,
    batch_size: int | None = None,
    parity_inputs: int | None = 32,
    atol: float | None = None,
    rtol: float | None = None,
) -> str:
    """Check the options of :func:`export_model`; return the compute units, normalised."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if precision not in get_args(Precision):
        raise UsageError(f"unknown precision {precision!r}", hint="use fp32 or fp16")
    if precision == "fp16" and fmt != "coreml":
        raise UsageError(
            f"{fmt} export is fp32 only; fp16 is a Core ML option",
            hint="drop --precision fp16, or export to coreml",
        )
    units = compute_units.strip().upper()
    if units not in COMPUTE_UNITS:
        raise UsageError(
            f"unknown Core ML compute units {compute_units!r}",
            hint=f"use one of {', '.join(COMPUTE_UNITS)}",
        )
    if not 7 <= opset <= 30:
        raise UsageError(f"ONNX opset {opset} is out of range", hint="18 suits every runtime")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, not {batch_size}")
    if parity_inputs is not None and parity_inputs < 1:
        raise UsageError(f"parity_inputs must be at least 1, not {parity_inputs}")
    default_tolerances(fmt, precision, "regression", atol=atol, rtol=rtol)  # checks them
    return units


def _converter(fmt: str) -> Callable[..., Converted]:
    if fmt == "onnx":
        from as_deploy.export._onnx import convert_onnx

        return convert_onnx
    if fmt == "coreml":
        from as_deploy.export._coreml import convert_coreml

        return convert_coreml
    from as_deploy.export._tflite import convert_tflite

    return convert_tflite


def _check_labels(labels: list[str] | None, outputs: list[TensorSpec]) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if not labels or any(not label for label in labels):
        raise UsageError("labels must be non-empty strings", hint="e.g. --labels cat,dog")
    if len(set(labels)) != len(labels):
        raise UsageError(f"labels has duplicates: {labels}")
    classes = outputs[0].shape[-1] if outputs[0].shape else None
    if classes is not None and classes != len(labels):
        raise UsageError(
            f"{len(labels)} labels for an output of {classes} classes "
            f"({outputs[0].name} {outputs[0].shape})",
            hint=f"give exactly {classes} labels, in output order",
        )
    return labels


def _run_parity(
    converted: Converted,
    workload: Any,
    fmt: str,
    precision: str,
    count: int | None,
    atol: float | None,
    rtol: float | None,
) -> ParityReport:
    from as_bench.backends._export import load_torch_model
    from as_bench.exceptions import BackendError

    tolerances = default_tolerances(fmt, precision, workload.task, atol=atol, rtol=rtol)
    data = parity_data(workload, count)
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


def export_model(
    source: str,
    fmt: Format,
    out_dir: Path,
    *,
    precision: Precision = "fp32",
    opset: int = 18,
    compute_units: str = "ALL",
    parity_inputs: int | None = 32,
    atol: float | None = None,
    rtol: float | None = None,
    labels: list[str] | None = None,
    description: str | None = None,
    workdir: Path | None = None,
    batch_size: int | None = None,
) -> ExportedModel:
    """Export ``source`` to ``fmt`` in ``out_dir`` after checking parity with PyTorch.

    See :mod:`as_deploy.export` for the formats, the file layout and the tolerances.

    Args:
        source: An as-bench built-in workload (``digits-cnn``, ``mlp``, ``minilm``) or
            ``pkg.module:factory``.
        fmt: ``"onnx"``, ``"coreml"`` or ``"tflite"``.
        out_dir: Where the files go (created if missing); the format's file or package
            must not exist there yet. Nothing is written there if parity fails.
        precision: ``"fp32"``, or ``"fp16"`` (Core ML only).
        opset: ONNX opset.
        compute_units: Core ML compute units recorded for (and used by) prediction:
            ``ALL``, ``CPU_ONLY``, ``CPU_AND_GPU`` or ``CPU_AND_NE``.
        parity_inputs: Inputs to compare, from the workload's held-out data where it has
            some (repeated if it has fewer), else its example inputs; ``None`` takes every
            held-out example.
        atol: Absolute tolerance; ``None`` takes the format's default.
        rtol: Relative tolerance; ``None`` takes the format's default.
        labels: Class labels in output order; ``None`` takes the built-in's (``"0"``..
            ``"9"`` for the digits classifiers) or none.
        description: What the model does, in words; defaults to the workload's.
        workdir: Folder for intermediate files (a temporary folder inside it is used and
            removed); ``None`` uses the system's temporary folder.
        batch_size: The fixed batch size of Core ML and TFLite models (default 1); for
            ONNX, the batch traced when the batch axis cannot be dynamic (default 1).

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
    units = _check_options(
        fmt, precision, compute_units, opset, batch_size, parity_inputs, atol, rtol
    )
    out_dir = Path(out_dir)
    for top in _OUTPUT_NAMES[fmt]:
        if (out_dir / top).exists():
            raise UsageError(f"{out_dir / top} exists", hint="export into an empty folder")
    check_format(fmt)
    workload = load_source(source, fmt)
    about = describe_source(workload)
    options = FormatOptions(
        precision=precision, opset=opset, compute_units=units, batch_size=batch_size
    )
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
            parity = _run_parity(converted, workload, fmt, precision, parity_inputs, atol, rtol)
        finally:
            converted.close()
        chosen_labels = _check_labels(
            labels if labels is not None else about["labels"], converted.outputs
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
        description=description if description is not None else workload.description,
        runtime_options=converted.runtime_options,
    )


def export_to_repository(
    source: str,
    fmt: Format,
    repo: Path,
    *,
    name: str,
    version: str,
    **options: Any,
) -> ExportResult:
    """Export ``source`` to ``fmt``, check parity, and add it to the repository ``repo``.

    Args:
        source: As for :func:`export_model`.
        fmt: As for :func:`export_model`.
        repo: The model repository's folder (created if missing).
        name: The model's name in the repository.
        version: The version to write; it must not exist yet.
        **options: The keyword options of :func:`export_model` (``precision``, ``opset``,
            ``compute_units``, ``parity_inputs``, ``atol``, ``rtol``, ``labels``,
            ``description``, ``workdir``, ``batch_size``).

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
    unknown = set(options) - _EXPORT_OPTIONS
    if unknown:
        raise TypeError(f"export_to_repository() got unknown options {sorted(unknown)}")
    _check_options(fmt, **{key: value for key, value in options.items() if key in _CHECKED_OPTIONS})
    repository = ModelRepository(Path(repo))
    existing = Path(repo) / name / version
    if existing.exists() or existing.is_symlink():
        raise VersionExistsError(f"{name}/{version} already exists at {existing}")
    workdir = options.pop("workdir", None)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="as-deploy-repo-", dir=workdir) as scratch:
        exported = export_model(
            source, fmt, Path(scratch) / "out", workdir=Path(scratch) / "work", **options
        )
        manifest = exported.manifest(name, version)
        directory = repository.add(manifest, exported.files)
    logger.info("wrote %s/%s (%s) to %s", name, version, fmt, directory)
    return ExportResult(manifest=manifest, directory=directory, exported=exported)


_EXPORT_OPTIONS = frozenset(
    {
        "precision",
        "opset",
        "compute_units",
        "parity_inputs",
        "atol",
        "rtol",
        "labels",
        "description",
        "workdir",
        "batch_size",
    }
)

_CHECKED_OPTIONS = frozenset(
    {"precision", "compute_units", "opset", "batch_size", "parity_inputs", "atol", "rtol"}
)
