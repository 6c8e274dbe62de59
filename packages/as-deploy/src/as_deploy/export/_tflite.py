"""TFLite export: litert-torch converts (as as-bench does), ai-edge-litert runs the file.

The parity check runs the file in an interpreter opened by
:func:`as_core.runtime.litert_interpreter`, as the server's runner opens it.

litert-torch bakes one batch size into the file, so the manifest's shapes are the real
ones (no dynamic dimension) and ``runtime_options.batch_size`` says which. The file's own
tensor names are generic (``args_0``, ``output_0``); the manifest uses the model's names
and ``runtime_options.tensor_names`` maps them to the signature's.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_core.runtime import RuntimeOptions, litert_interpreter
from as_deploy.exceptions import ExportError
from as_deploy.export._extras import require, translated_extras
from as_deploy.export._formats import Converted, dtype_name, tensor_spec
from as_deploy.export._options import ExportOptions
from as_deploy.runtime.tflite import signature_tensors

__all__ = ["MODEL_FILE", "convert_tflite"]

MODEL_FILE = "model.tflite"


Array = npt.NDArray[Any]


def _signature_key(interpreter: Any) -> str | None:
    signatures = interpreter.get_signature_list()
    return next(iter(signatures)) if len(signatures) == 1 else None


def _named(details: list[dict[str, Any]], names: Sequence[str]) -> list[tuple[str, str, list[int]]]:
    """``(name, dtype, shape)`` of each tensor, named as the workload names them."""
    own = list(names) if len(names) == len(details) else [str(d["name"]) for d in details]
    return [
        (name, np.dtype(d["dtype"]).name, [int(dim) for dim in d["shape"]])
        for name, d in zip(own, details, strict=True)
    ]


def convert_tflite(
    workload: Any,
    scratch: Path,
    options: ExportOptions,
    descriptions: tuple[str | None, str | None] = (None, None),
) -> Converted:
    """Convert ``workload`` to ``.tflite`` in ``scratch`` and load it in ai-edge-litert.

    Args:
        workload: The as-bench workload.
        scratch: An empty folder this call may fill.
        options: ``batch_size`` (default 1) is the batch baked into the file.
        descriptions: Words for the first input and the first output, if known.

    Raises:
        ExportError: Conversion or loading failed.
    """
    from as_bench.exceptions import BackendError
    from as_bench.export import convert_tflite as convert

    require("litert_torch", "tflite")
    require("ai_edge_litert.interpreter", "tflite")
    batch_size = options.batch_size or 1
    with translated_extras("tflite"):
        try:
            converted = convert(workload, batch_size, scratch / "tflite")
        except BackendError as exc:
            raise ExportError(str(exc)) from exc
    staging = scratch / "version"
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / MODEL_FILE
    shutil.copyfile(converted, target)
    try:
        interpreter = litert_interpreter(target, RuntimeOptions())
        in_details, out_details = signature_tensors(interpreter)
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f"tflite: LiteRT cannot load {target}: {exc}") from exc
    key = _signature_key(interpreter)
    described_in = _named(in_details, workload.input_names)
    described_out = _named(out_details, workload.output_names)
    specs = []
    for items, description in ((described_in, descriptions[0]), (described_out, descriptions[1])):
        specs.append(
            [
                tensor_spec(
                    name,
                    dtype_name(dtype, "tflite"),
                    shape,
                    description if position == 0 else None,
                )
                for position, (name, dtype, shape) in enumerate(items)
            ]
        )
    holder: list[Any] = [interpreter]

    def run(batch: tuple[Array, ...]) -> list[Array]:
        active = holder[0]
        for detail, array in zip(in_details, batch, strict=True):
            active.set_tensor(int(detail["index"]), np.ascontiguousarray(array, detail["dtype"]))
        active.invoke()
        return [np.array(active.get_tensor(int(detail["index"]))) for detail in out_details]

    tensor_names = {}
    if key is not None:
        tensor_names = {
            name: str(detail["name"])
            for (name, _, _), detail in zip(
                [*described_in, *described_out], [*in_details, *out_details], strict=True
            )
        }
    return Converted(
        staging=staging,
        files={MODEL_FILE: (target, "model")},
        inputs=specs[0],
        outputs=specs[1],
        runtime="ai-edge-litert",
        batch_size=batch_size,
        run=run,
        runtime_options={
            "batch_size": batch_size,
            "signature": key,
            "tensor_names": tensor_names,
        },
        close=holder.clear,
    )
