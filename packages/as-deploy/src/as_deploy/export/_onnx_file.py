"""add_onnx_model: an ONNX file made elsewhere (by as-optimize, say) stored as a version.

The version is described as :func:`~as_deploy.export.export_to_repository` describes an
ONNX export of the same source: inputs and outputs as ONNX Runtime reports them, the
source's labels, preprocessing and description, every file's sha256, and a parity report
of the file run in ONNX Runtime (the server's options) against eager PyTorch fp32.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_deploy._onnx_data import external_data_locations
from as_deploy.exceptions import ExportError, UsageError, VersionExistsError
from as_deploy.export._api import ExportedModel, ExportResult, _check_labels
from as_deploy.export._extras import check_format
from as_deploy.export._onnx import MODEL_FILE, open_onnx
from as_deploy.export._parity import (
    Tolerances,
    check_parity,
    default_tolerances,
    reference_outputs,
    run_batched,
)
from as_deploy.export._provenance import git_commit, tool_versions
from as_deploy.export._source import ParityData, describe_source, load_source, parity_data
from as_deploy.manifest import MANIFEST_FILENAME, Provenance, check_name
from as_deploy.repository import ModelRepository

__all__ = ["add_onnx_model"]

logger = logging.getLogger(__name__)

Array = npt.NDArray[Any]


def _external_files(model_file: Path) -> dict[str, Path]:
    """The external-data files ``model_file`` reads (every tensor, as the runner checks)."""
    try:
        locations = external_data_locations(model_file.read_bytes())
    except ValueError as exc:
        raise ExportError(f"{model_file} is not an ONNX model (a protobuf file): {exc}") from None
    found: dict[str, Path] = {}
    for location in sorted(set(locations)):
        parts = location.split("/")
        if (
            not location
            or location in (MODEL_FILE, MANIFEST_FILENAME)
            or location.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ExportError(
                f"{model_file}: a tensor's external data is stored as {location!r}, which a "
                "version cannot hold beside its model"
            )
        path = model_file.parent / location
        if not path.is_file():
            raise ExportError(f"{model_file}: its external data {path} is missing")
        found[location] = path
    return found


def _parity_inputs(
    workload: Any, given: Sequence[Array] | None, description: str | None
) -> ParityData:
    if given is None:
        return parity_data(workload, None)
    arrays = tuple(np.ascontiguousarray(a) for a in given)
    if not arrays or any(len(a) != len(arrays[0]) for a in arrays) or len(arrays[0]) < 1:
        raise UsageError(
            "parity_inputs must hold one array per model input, all with the same number of "
            "rows (at least one)"
        )
    return ParityData(arrays, description or f"{len(arrays[0])} given inputs")


def add_onnx_model(
    model_file: Path,
    source: str,
    repo: Path,
    *,
    name: str,
    version: str,
    tolerances: Tolerances | None = None,
    parity_inputs: Sequence[Array] | None = None,
    parity_data_description: str | None = None,
    optimization: Mapping[str, Any] | None = None,
    extra_tool_versions: Mapping[str, str] | None = None,
    labels: Sequence[str] | None = None,
    description: str | None = None,
) -> ExportResult:
    """Check an ONNX file made from ``source`` against PyTorch and add it to ``repo``.

    For a model derived from a workload by another tool (a quantized or otherwise
    optimized copy of its ONNX export): the file is opened in ONNX Runtime with the
    server's default options, run on the parity inputs and compared with eager PyTorch
    fp32 (``source``'s model) as an export's parity check is, then stored with the
    manifest an ONNX export of ``source`` would have (inputs, outputs, labels,
    preprocessing, description, runtime options, every file's sha256) and ``optimization``
    in its provenance. The file is stored as ``model.onnx``; external-data files it
    refers to are stored beside it under their locations (role ``weights``).

    Args:
        model_file: The ONNX file.
        source: The model it was made from: an as-bench built-in workload or
            ``pkg.module:factory`` (its eager PyTorch model is the parity reference).
        repo: The model repository (created if missing).
        name: The model's name in the repository.
        version: The version to write; it must not exist yet.
        tolerances: What the parity check allows; ONNX fp32's defaults (see
            :mod:`as_deploy.export`) when ``None``. A compressed model needs wider ones.
        parity_inputs: The inputs to check on (one array per model input, rows first);
            the source's held-out data (or 32 example inputs) when ``None``.
        parity_data_description: What ``parity_inputs`` are, in words, for the report.
        optimization: How the model was made (JSON-compatible), recorded as the
            manifest's ``provenance.optimization``.
        extra_tool_versions: Versions of the tools that made the file, added to the
            installed versions the provenance records.
        labels: Class labels in output order; the source's (as an export records them)
            when ``None``.
        description: What the model does; the source's description when ``None``.

    Returns:
        The manifest, the version folder, and the description it was made from.

    Raises:
        InvalidNameError: ``name`` or ``version`` is not valid (checked first).
        VersionExistsError: The version exists (checked before the check runs, and again
            atomically when writing).
        UsageError: ``model_file`` is not a file, bad ``parity_inputs`` or labels.
        MissingExtraError: The ``export`` extra is not installed.
        ExportError: The source cannot be loaded, the file cannot be opened or run, or
            its external data is missing.
        ParityError: The outputs differ from PyTorch's beyond ``tolerances``; nothing is
            written.
        RepositoryError: The version could not be written.
    """
    from as_bench.exceptions import BackendError
    from as_bench.export import load_torch_model

    check_name(name)
    check_name(version, "version")
    model_file = Path(model_file)
    if not model_file.is_file():
        raise UsageError(f"{model_file} is not a file", hint="give the path of an .onnx file")
    existing = Path(repo) / name / version
    if existing.exists() or existing.is_symlink():
        raise VersionExistsError(f"{name}/{version} already exists at {existing}")
    check_format("onnx")
    workload = load_source(source, "onnx")
    about = describe_source(workload)
    files = {MODEL_FILE: model_file, **_external_files(model_file)}
    opened = open_onnx(model_file, (about["input_description"], about["output_description"]))
    try:
        first = opened.inputs[0].shape
        dynamic = bool(first) and first[0] is None
        batch = None if dynamic or not first else int(first[0])
        chosen = tolerances or default_tolerances("onnx", "fp32", workload.task)
        data = _parity_inputs(workload, parity_inputs, parity_data_description)
        try:
            torch_model = load_torch_model(workload, "torch")
        except BackendError as exc:
            raise ExportError(str(exc)) from exc
        reference = reference_outputs(torch_model, data.inputs)
        candidate = run_batched(opened.run, data.inputs, batch)
        parity = check_parity(
            reference,
            candidate,
            fmt="onnx",
            task=workload.task,
            tolerances=chosen,
            runtime="onnxruntime",
            data=data.description,
        )
    finally:
        opened.close()
    logger.info(
        "%s: parity with PyTorch on %d inputs: max abs error %.3g, top-1 agreement %s",
        model_file,
        len(data),
        parity.max_abs_error,
        parity.top1_agreement,
    )
    exported = ExportedModel(
        format="onnx",
        directory=model_file.parent,
        files=files,
        roles={relative: "model" if relative == MODEL_FILE else "weights" for relative in files},
        inputs=opened.inputs,
        outputs=opened.outputs,
        labels=_check_labels(
            tuple(labels) if labels is not None else _tuple(about["labels"]), opened.outputs
        ),
        preprocessing=about["preprocessing"],
        parity=parity,
        provenance=Provenance(
            source=source.strip(),
            created_at=datetime.now(UTC),
            tool_versions={**tool_versions(), **dict(extra_tool_versions or {})},
            git_commit=git_commit(),
            optimization=None if optimization is None else dict(optimization),
        ),
        description=description if description is not None else workload.description,
        runtime_options={**opened.runtime_options, "dynamic_batch": dynamic},
    )
    manifest = exported.manifest(name, version)
    directory = ModelRepository(Path(repo)).add(manifest, files)
    logger.info("added %s as %s/%s at %s", model_file, name, version, directory)
    return ExportResult(manifest=manifest, directory=directory, exported=exported)


def _tuple(found: list[str] | None) -> tuple[str, ...] | None:
    return None if found is None else tuple(found)
