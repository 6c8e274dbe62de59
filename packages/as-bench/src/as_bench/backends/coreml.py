"""Core ML backend: coremltools converts to an ML program, Core ML runs it on macOS.

Conversion works on any platform (it is how the tests check it on Linux); prediction
needs macOS, so off macOS :meth:`CoreMLBackend.devices` is empty and
:meth:`CoreMLBackend.prepare` raises :class:`DeviceUnavailableError`.

Devices name the Core ML compute units the model may use, because Core ML, not the
caller, places each layer on a processor:

==============  =============================  ===========================================
device          ``coremltools.ComputeUnit``    meaning
==============  =============================  ===========================================
``coreml-cpu``  ``CPU_ONLY``                   the CPU only
``coreml-gpu``  ``CPU_AND_GPU``                the GPU, with the CPU for what it cannot run
``coreml-ane``  ``CPU_AND_NE``                 the Neural Engine, with the CPU as fallback
``coreml-all``  ``ALL``                        whatever Core ML picks per layer
==============  =============================  ===========================================

``coreml-ane`` is listed on Apple Silicon only (Intel Macs have no Neural Engine).
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from as_bench.backends._base import Array, Backend, PreparedModel
from as_bench.backends._file_backends import (
    TensorSpec,
    check_inputs,
    dist_version,
    load_torch_model,
    path_size,
    torch_args,
)
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.workloads._base import Workload
from as_core.extras import is_installed, require

__all__ = ["COMPUTE_UNITS", "CoreMLBackend", "Precision"]

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16"]

#: Device name -> name of the ``coremltools.ComputeUnit`` member it selects.
COMPUTE_UNITS: dict[str, str] = {
    "coreml-cpu": "CPU_ONLY",
    "coreml-gpu": "CPU_AND_GPU",
    "coreml-ane": "CPU_AND_NE",
    "coreml-all": "ALL",
}
_PRECISIONS = {"fp32": "FLOAT32", "fp16": "FLOAT16"}
# Core ML multiarrays have no int64: integer inputs (token ids) are declared int32.
_ALLOWED_CASTS = frozenset({("int64", "int32")})


def _on_macos() -> bool:
    return sys.platform == "darwin"


def _coreml_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a Core ML input or output of NumPy ``dtype`` is declared with.

    Float tensors stay float32 at the interface even for fp16 compute, so that callers
    always pass and get float32 (Core ML casts inside the program).
    """
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float32)
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return np.dtype(np.int32)
    raise BackendError(f"coreml: tensors of dtype {dtype} are not supported")


def _io_from_spec(ct: Any, spec: Any) -> dict[str, list[dict[str, Any]]]:
    """Names, shapes and dtypes of a Core ML spec's inputs and outputs, for ``info``."""
    data_types = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType

    def features(items: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": item.name,
                "shape": [int(d) for d in item.type.multiArrayType.shape],
                "dtype": data_types.Name(item.type.multiArrayType.dataType).lower(),
            }
            for item in items
        ]

    return {
        "inputs": features(spec.description.input),
        "outputs": features(spec.description.output),
    }


def _trace(torch: Any, model: Any, args: tuple[Any, ...]) -> tuple[Any, list[Array]]:
    """TorchScript-trace ``model``; also return its outputs on ``args`` (for their dtypes)."""
    with torch.no_grad():
        outputs = model(*args)
        outputs = outputs if isinstance(outputs, tuple | list) else (outputs,)
        with warnings.catch_warnings(record=True) as caught:
            # torch 2.9+ deprecates TorchScript, but it is still coremltools' mature path:
            # its torch.export path can neither name inputs and outputs nor keep the
            # outputs of an fp16 program float32.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
            # Tracing probes every attribute of every submodule (hasattr), which reads the
            # deprecated properties of Hugging Face models; the model never uses them.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
            # A tracer warning says the trace took a Python value (a shape, a branch) as a
            # constant. Core ML models have static shapes, so that is expected; it is
            # logged, and a value-dependent branch shows in the runner's output check.
            warnings.simplefilter("always", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, args)
    tracer_notes = {
        str(w.message) for w in caught if issubclass(w.category, torch.jit.TracerWarning)
    }
    for note in sorted(tracer_notes):
        logger.info("coreml: TorchScript tracer: %s", note)
    for w in caught:  # anything else is not ours to hide: warn as it would have
        if not issubclass(w.category, torch.jit.TracerWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return traced, [o.numpy() for o in outputs]


def _tensor_types(
    ct: Any, names: Any, arrays: Sequence[Array], kind: str, *, shaped: bool
) -> list[Any]:
    """``ct.TensorType`` per input or output, named as the workload names them."""
    names = list(names)
    if len(names) != len(arrays):
        msg = f"coreml: the workload names {len(names)} {kind} {names}, the model has {len(arrays)}"
        raise BackendError(msg)
    return [
        ct.TensorType(name=name, shape=array.shape, dtype=_coreml_dtype(array.dtype).type)
        if shaped
        else ct.TensorType(name=name, dtype=_coreml_dtype(array.dtype).type)
        for name, array in zip(names, arrays, strict=True)
    ]


def _convert_traced(ct: Any, traced: Any, **options: Any) -> None:
    """``ct.convert`` without the warning of the temporary folder it leaks."""
    with warnings.catch_warnings():
        # coremltools never cleans up the TemporaryDirectory it stages weights in, so the
        # garbage collector warns about it as soon as the conversion returns.
        warnings.filterwarnings(
            "ignore", message="Implicitly cleaning up", category=ResourceWarning
        )
        try:
            ct.convert(traced, **options)
        except Exception as exc:
            # The failed call's frames still hold that folder: free them here, inside the
            # filter, rather than whenever the error happens to be collected.
            traceback.clear_frames(exc.__traceback__)
            raise


class CoreMLBackend(Backend):
    """Runs workloads as Core ML ML programs (``.mlpackage``) on macOS.

    Args:
        precision: ``"fp32"`` or ``"fp16"`` compute precision of the converted program.
            Inputs and outputs stay float32 either way.
        minimum_deployment_target: Name of a ``coremltools.target`` member; ``"macOS13"``
            (the default) is the oldest that allows typed fp16 programs.
    """

    name = "coreml"
    extra = "coreml"

    def __init__(
        self, precision: Precision = "fp32", minimum_deployment_target: str = "macOS13"
    ) -> None:
        """Configure conversion (see the class docstring)."""
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        self.precision: Precision = precision
        self.minimum_deployment_target = minimum_deployment_target

    def is_available(self) -> bool:
        """Whether coremltools and torch are installed and this is macOS (no import)."""
        return _on_macos() and is_installed("coremltools") and is_installed("torch")

    def devices(self) -> list[str]:
        """The ``coreml-*`` devices usable here; empty off macOS (no prediction there)."""
        if not _on_macos():
            return []
        require("coremltools", self.extra, error=MissingExtraError)
        names = list(COMPUTE_UNITS)
        if platform.machine() != "arm64":
            names.remove("coreml-ane")
        return names

    def convert(
        self,
        workload: Workload,
        batch_size: int,
        workdir: Path,
        precision: Precision | None = None,
    ) -> Path:
        """Convert the workload to an ``.mlpackage`` for one batch size (works off macOS).

        The package is cached in ``workdir`` as ``<workload>-bs<N>-<precision>.mlpackage``
        and reused while it exists.

        Args:
            workload: Its model must be a ``torch.nn.Module`` that TorchScript can trace.
            batch_size: The static batch size of the inputs.
            workdir: Folder for the package (created if missing).
            precision: ``"fp32"`` or ``"fp16"``; ``None`` takes the backend's.

        Returns:
            Path of the ``.mlpackage`` folder.

        Raises:
            BackendError: Tracing or conversion failed.
        """
        precision = precision or self.precision
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", workload.name)
        path = Path(workdir) / f"{safe_name}-bs{batch_size}-{precision}.mlpackage"
        if path.is_dir():
            logger.debug("reusing %s", path)
            return path
        ct = require("coremltools", self.extra, error=MissingExtraError)
        torch = require("torch", "torch", error=MissingExtraError)
        model = load_torch_model(workload, self.name)
        arrays = workload.inputs(batch_size)
        args = torch_args(arrays)
        step = "tracing with TorchScript"
        partial = path.with_name(f".partial-{path.name}")
        try:
            traced, outputs = _trace(torch, model, args)
            ct_inputs = _tensor_types(ct, workload.input_names, arrays, "inputs", shaped=True)
            ct_outputs = _tensor_types(ct, workload.output_names, outputs, "outputs", shaped=False)
            step = "converting with coremltools"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
            logger.info("converting %r (batch size %d) to %s", workload.name, batch_size, path)
            _convert_traced(
                ct,
                traced,
                inputs=ct_inputs,
                outputs=ct_outputs,
                convert_to="mlprogram",
                compute_precision=getattr(ct.precision, _PRECISIONS[precision]),
                minimum_deployment_target=getattr(ct.target, self.minimum_deployment_target),
                package_dir=str(partial),
                skip_model_load=True,  # loading needs macOS; prepare() loads it there
            )
            partial.replace(path)  # a crash never leaves a half-written package in the cache
        except BackendError:
            raise
        except Exception as exc:
            shutil.rmtree(partial, ignore_errors=True)
            msg = (
                f"coreml: {step} workload {workload.name!r} (batch size {batch_size}, "
                f"{precision}) failed: {type(exc).__name__}: {exc}"
            )
            raise BackendError(msg) from exc
        return path

    def describe(self, path: Path) -> dict[str, Any]:
        """Spec version, inputs and outputs of a converted package (works off macOS).

        Returns:
            ``{"spec_version": int, "inputs": [...], "outputs": [...]}`` where each
            input or output is ``{"name", "shape", "dtype"}``.
        """
        ct = require("coremltools", self.extra, error=MissingExtraError)
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        return {"spec_version": int(spec.specificationVersion), **_io_from_spec(ct, spec)}

    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Convert (or reuse) the package and load it for ``device``'s compute units.

        Raises:
            DeviceUnavailableError: Not macOS, or ``device`` is not one of :meth:`devices`.
            BackendError: Conversion or loading failed.
        """
        if not _on_macos():
            msg = f"Core ML prediction needs macOS (this is {sys.platform}); convert() works here"
            raise DeviceUnavailableError(msg)
        if device not in self.devices():
            msg = f"coreml: unknown device {device!r}; available: {self.devices()}"
            raise DeviceUnavailableError(msg)
        ct = require("coremltools", self.extra, error=MissingExtraError)
        path = self.convert(workload, batch_size, workdir)
        compute_units = getattr(ct.ComputeUnit, COMPUTE_UNITS[device])
        try:
            holder: list[Any] = [ct.models.MLModel(str(path), compute_units=compute_units)]
        except Exception as exc:
            raise BackendError(f"coreml: loading {path} failed: {exc}") from exc
        spec = holder[0].get_spec()
        arrays = workload.inputs(batch_size)
        expected: list[TensorSpec] = [
            (name, tuple(array.shape), _coreml_dtype(array.dtype))
            for name, array in zip(workload.input_names, arrays, strict=True)
        ]
        output_names = list(workload.output_names)

        def run(checked: list[Array]) -> dict[str, Any]:
            if not holder:
                raise BackendError("coreml: the model was closed; prepare it again")
            feed = {name: array for (name, _, _), array in zip(expected, checked, strict=True)}
            try:
                result: dict[str, Any] = holder[0].predict(feed)
            except Exception as exc:
                raise BackendError(f"coreml: predict failed: {exc}") from exc
            return result

        def predict(inputs: tuple[Array, ...]) -> list[Array]:
            result = run(check_inputs(self.name, inputs, expected, _ALLOWED_CASTS))
            return [np.asarray(result[name]) for name in output_names]

        bench_inputs = check_inputs(self.name, arrays, expected, _ALLOWED_CASTS)
        info: dict[str, Any] = {
            "compute_units": COMPUTE_UNITS[device],
            "precision": self.precision,
            "minimum_deployment_target": self.minimum_deployment_target,
            "coremltools": dist_version("coremltools"),
            "spec_version": int(spec.specificationVersion),
            "model_path": str(path),
            **_io_from_spec(ct, spec),
        }
        return PreparedModel(
            backend=self.name,
            device=device,
            batch_size=batch_size,
            predict=predict,
            bench_call=lambda: run(bench_inputs),
            timing_device="cpu",
            model_size_bytes=path_size(path),
            info=info,
            close=holder.clear,
        )
