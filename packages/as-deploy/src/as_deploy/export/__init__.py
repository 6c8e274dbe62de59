"""Export a PyTorch model to ONNX, Core ML or TFLite, check parity, store it in a repository.

::

    from as_deploy.export import ExportOptions, export_to_repository

    options = ExportOptions.parse(format="onnx", parity_inputs=64)
    result = export_to_repository("digits-cnn", options, Path("models"), name="digits", version="1")
    result.manifest.parity.max_abs_error, result.directory

Every option of an export lives in one frozen :class:`ExportOptions`, checked when it is
made (:meth:`ExportOptions.parse` takes plain strings, as the command line has them); a
format name alone (``"onnx"``) stands for the defaults.

The source is an as-bench workload: a built-in (``digits-cnn``, ``mlp``, ``minilm``) or
``pkg.module:factory``, a factory returning ``(torch_module, example_inputs)`` or an
``as_bench.workloads.Workload`` (see :func:`as_bench.workloads.get_workload`).

Every export is followed by a parity check: the exported file runs in the runtime that will
serve it (ONNX Runtime, ai-edge-litert, Core ML) on at least 32 inputs (the workload's
held-out data where it has some, else its example inputs) and its outputs are compared
with eager PyTorch's: max absolute and relative error, and top-1 agreement for
classifiers, within tolerances per format and precision (see
:mod:`as_deploy.export._parity`). A failed check raises :class:`ParityError` with the
figures and nothing is written. Core ML prediction needs macOS: elsewhere the package is
converted and described, and the manifest's ``parity`` says
``{"status": "not_run", "reason": "Core ML prediction needs macOS", ...}`` with the
tolerances the check will use on a Mac.

What a version folder holds, by format (paths relative to ``<repo>/<name>/<version>/``):

``onnx``
    ``model.onnx`` (role ``model``): one self-contained file with a dynamic batch axis
    where the model allows it (``runtime_options.dynamic_batch``) and the opset in
    ``runtime_options.opset``. Models of 2 GB or more also have ``model.onnx.data``
    (role ``weights``), the external weights ``model.onnx`` refers to by that name.

``coreml``
    The ``.mlpackage`` is a folder, and a repository stores files, so it is stored
    unpacked, each of its files listed in the manifest with its own sha256::

        model.mlpackage/Manifest.json                               role "model"
        model.mlpackage/Data/com.apple.CoreML/model.mlmodel         role "other"
        model.mlpackage/Data/com.apple.CoreML/weights/weight.bin    role "weights"

    The package's own ``Manifest.json`` has role ``model``, so ``LoadedModel.model_path``
    is that file and its parent, ``LoadedModel.model_path.parent`` (also
    ``directory / runtime_options["package"]``), is the ``.mlpackage`` folder to open with
    ``coremltools.models.MLModel(str(folder), compute_units=ComputeUnit[units])``. Every
    file has been verified by ``ModelRepository.load``. ``runtime_options`` holds
    ``package`` (``"model.mlpackage"``), ``compute_units`` (``ALL``, ``CPU_ONLY``,
    ``CPU_AND_GPU``, ``CPU_AND_NE``), ``precision`` (``fp32``/``fp16``; inputs and outputs
    are float32 either way), ``batch_size`` (the fixed batch: the inputs' first
    dimension) and ``minimum_deployment_target``. Inputs and outputs are named as in the
    manifest; integer inputs are int32.

``tflite``
    ``model.tflite`` (role ``model``). litert-torch exports a fixed batch size, so the
    manifest's shapes are the real ones (no ``None``); ``runtime_options`` has
    ``batch_size``, ``signature`` (the signature key to run) and ``tensor_names`` (the
    manifest's input/output names -> the signature's ``args_0``/``output_0`` names).

An ONNX file made from a source by another tool (as-optimize's compressed winner) is
stored with :func:`add_onnx_model`: the same manifest an ONNX export of that source gets,
its parity checked against eager PyTorch with the tolerances the caller gives, and how it
was made in ``provenance.optimization``::

    from as_deploy.export import Tolerances, add_onnx_model

    result = add_onnx_model(
        Path("out/winner/model.onnx"), "digits-cnn", Path("models"), name="digits",
        version="2", tolerances=Tolerances(atol=0.5, rtol=1e-3, min_top1_agreement=0.97),
        optimization={"technique": "ort-static-int8"},
    )

Each format is an extra of as-deploy: ``export`` (ONNX), ``coreml`` and ``tflite``; a
missing library fails with the exact ``uv add "as-deploy[<extra>]"`` command. as-deploy's
core install (the server) has none of them: importing this package needs no as-bench or
torch, only running an export does.
"""

from __future__ import annotations

from as_deploy.exceptions import ExportError, MissingExtraError, ParityError
from as_deploy.export._api import (
    ExportedModel,
    ExportResult,
    export_model,
    export_to_repository,
)
from as_deploy.export._extras import FORMAT_EXTRAS, check_format
from as_deploy.export._onnx_file import add_onnx_model
from as_deploy.export._options import (
    COMPUTE_UNITS,
    DEFAULT_OPSET,
    FORMATS,
    PRECISIONS,
    ComputeUnits,
    ExportOptions,
    Format,
    Precision,
)
from as_deploy.export._parity import Tolerances, default_tolerances
from as_deploy.export._source import default_name

__all__ = [
    "COMPUTE_UNITS",
    "DEFAULT_OPSET",
    "FORMATS",
    "FORMAT_EXTRAS",
    "PRECISIONS",
    "ComputeUnits",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "ExportedModel",
    "Format",
    "MissingExtraError",
    "ParityError",
    "Precision",
    "Tolerances",
    "add_onnx_model",
    "check_format",
    "default_name",
    "default_tolerances",
    "export_model",
    "export_to_repository",
]
