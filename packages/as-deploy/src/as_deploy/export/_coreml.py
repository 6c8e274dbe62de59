"""Core ML export: an ML program (``.mlpackage``) through coremltools, as as-bench converts.

Conversion works everywhere; prediction needs macOS, so elsewhere the converter returns no
runner and the parity check is recorded as not run. The package is stored unpacked under
``model.mlpackage/`` in the version folder (see :mod:`as_deploy.export`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy.typing as npt

from as_deploy.exceptions import ExportError
from as_deploy.export._extras import require, translated_extras
from as_deploy.export._formats import Converted, dtype_name, tensor_spec
from as_deploy.export._options import ExportOptions

__all__ = ["DEVICES", "NOT_ON_MACOS", "PACKAGE", "convert_coreml", "package_files"]

Array = npt.NDArray[Any]

PACKAGE = "model.mlpackage"
MINIMUM_DEPLOYMENT_TARGET = "macOS13"

#: Why the parity check does not run off macOS.
NOT_ON_MACOS = "Core ML prediction needs macOS"

#: Compute units -> the as-bench Core ML device that selects them.
DEVICES: dict[str, str] = {
    "ALL": "coreml-all",
    "CPU_ONLY": "coreml-cpu",
    "CPU_AND_GPU": "coreml-gpu",
    "CPU_AND_NE": "coreml-ane",
}

# Core ML's ArrayDataType names, lowercased, -> manifest dtypes.
_DTYPES = {"float32": "float32", "float16": "float16", "double": "float64", "int32": "int32",
           "int8": "int8", "uint8": "uint8"}  # fmt: skip


def _on_macos() -> bool:
    return sys.platform == "darwin"


def package_files(staging: Path) -> dict[str, tuple[Path, str]]:
    """Every file of ``staging/model.mlpackage`` by manifest path, with its role.

    The package's root ``Manifest.json`` is the ``model``; files under a ``weights``
    folder are ``weights``; the rest (the program, ``model.mlmodel``) are ``other``.
    """
    root = staging / PACKAGE
    files: dict[str, tuple[Path, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ExportError(f"coreml: {path} is a symlink; a package must hold plain files")
        if not path.is_file():
            continue
        relative = path.relative_to(staging).as_posix()
        inside = path.relative_to(root).parts
        if inside == ("Manifest.json",):
            role = "model"
        elif "weights" in inside[:-1]:
            role = "weights"
        else:
            role = "other"
        files[relative] = (path, role)
    if f"{PACKAGE}/Manifest.json" not in files:
        raise ExportError(f"coreml: {root} has no Manifest.json; it is not an ML package")
    return files


def _specs(items: list[dict[str, Any]], descriptions: list[str | None]) -> list[Any]:
    specs = []
    for item, description in zip(items, descriptions, strict=False):
        dtype = _DTYPES.get(item["dtype"])
        if dtype is None:
            raise ExportError(f"coreml: tensor {item['name']!r} has type {item['dtype']}")
        specs.append(
            tensor_spec(item["name"], dtype_name(dtype, "coreml"), item["shape"], description)
        )
    return specs


def _fill_output_shapes(workload: Any, outputs: list[Any], batch_size: int) -> list[Any]:
    """Output shapes from PyTorch where the package leaves them unset (fp16 programs)."""
    if all(spec.shape for spec in outputs):
        return outputs
    import torch

    from as_bench.export import load_torch_model, torch_inputs

    with torch.inference_mode():
        result = load_torch_model(workload, "coreml")(*torch_inputs(workload.inputs(batch_size)))
    arrays = result if isinstance(result, tuple | list) else (result,)
    return [
        spec if spec.shape else spec.model_copy(update={"shape": list(array.shape)})
        for spec, array in zip(outputs, arrays, strict=False)
    ]


def convert_coreml(
    workload: Any,
    scratch: Path,
    options: ExportOptions,
    descriptions: tuple[str | None, str | None] = (None, None),
) -> Converted:
    """Convert ``workload`` to an ML program in ``scratch``; on macOS, load it to run.

    Args:
        workload: The as-bench workload (its model must trace with TorchScript).
        scratch: An empty folder this call may fill.
        options: ``precision``, ``compute_units`` and ``batch_size`` (default 1) are used.
        descriptions: Words for the first input and the first output, if known.

    Raises:
        ExportError: Conversion failed, or loading the package on macOS failed.
    """
    from as_bench.exceptions import BackendError, DeviceUnavailableError
    from as_bench.export import convert_coreml as convert
    from as_bench.export import describe_coreml

    require("coremltools", "coreml")
    batch_size = options.batch_size or 1
    cache = scratch / "coreml"
    with translated_extras("coreml"):
        try:
            converted = convert(
                workload,
                batch_size,
                cache,
                precision=options.precision,
                minimum_deployment_target=MINIMUM_DEPLOYMENT_TARGET,
            )
            described = describe_coreml(converted)
        except BackendError as exc:
            raise ExportError(str(exc)) from exc
    staging = scratch / "version"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copytree(converted, staging / PACKAGE, symlinks=True)
    n_in, n_out = len(described["inputs"]), len(described["outputs"])
    inputs = _specs(described["inputs"], [descriptions[0]] + [None] * (n_in - 1))
    outputs = _specs(described["outputs"], [descriptions[1]] + [None] * (n_out - 1))
    outputs = _fill_output_shapes(workload, outputs, batch_size)
    runtime_options: dict[str, Any] = {
        "package": PACKAGE,
        "compute_units": options.compute_units,
        "precision": options.precision,
        "batch_size": batch_size,
        "minimum_deployment_target": MINIMUM_DEPLOYMENT_TARGET,
        "spec_version": described["spec_version"],
        "model_type": "mlprogram",
    }
    result = Converted(
        staging=staging,
        files=package_files(staging),
        inputs=inputs,
        outputs=outputs,
        runtime="coreml",
        batch_size=batch_size,
        run=None,
        not_run_reason=NOT_ON_MACOS,
        runtime_options=runtime_options,
    )
    if not _on_macos():
        return result
    from as_bench.backends import get_backend

    device = DEVICES[options.compute_units]
    with translated_extras("coreml"):
        backend = get_backend(
            "coreml",
            precision=options.precision,
            minimum_deployment_target=MINIMUM_DEPLOYMENT_TARGET,
        )
        if device not in backend.devices():
            result.not_run_reason = (
                f"Core ML compute units {options.compute_units} are not available on this Mac"
            )
            return result
        try:
            prepared = backend.prepare(workload, device, batch_size, cache)
        except (BackendError, DeviceUnavailableError) as exc:
            raise ExportError(str(exc)) from exc
    result.run = prepared.predict
    result.not_run_reason = None
    result.close = prepared.close
    return result
