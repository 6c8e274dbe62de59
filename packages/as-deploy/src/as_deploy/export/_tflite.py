"""TFLite export: litert-torch converts (as as-bench does), ai-edge-litert runs the file.

litert-torch bakes one batch size into the file, so the manifest's shapes are the real
ones (no dynamic dimension) and ``runtime_options.batch_size`` says which. The file's own
tensor names are generic (``args_0``, ``output_0``); the manifest uses the model's names
and ``runtime_options.tensor_names`` maps them to the signature's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from as_deploy.exceptions import ExportError
from as_deploy.export._extras import require, translated_extras
from as_deploy.export._formats import Converted, FormatOptions, dtype_name, tensor_spec

__all__ = ["MODEL_FILE", "convert_tflite"]

MODEL_FILE = "model.tflite"


def _by_position(names: list[str]) -> list[str]:
    """Signature names (``args_0``, ``args_10``, ``args_2``) in argument order."""
    keyed = []
    for name in names:
        match = re.search(r"(\d+)$", name)
        if match is None:
            return names
        keyed.append((int(match.group(1)), name))
    return [name for _, name in sorted(keyed)]


def _signature(path: Path) -> tuple[str | None, list[str], list[str]]:
    interpreter_mod = require("ai_edge_litert.interpreter", "tflite")
    interpreter = interpreter_mod.Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return None, [], []
    key, entry = next(iter(signatures.items()))
    return key, _by_position(list(entry["inputs"])), _by_position(list(entry["outputs"]))


def convert_tflite(
    workload: Any,
    scratch: Path,
    options: FormatOptions,
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
    from as_bench.backends.tflite import TFLiteBackend
    from as_bench.exceptions import BackendError

    require("litert_torch", "tflite")
    require("ai_edge_litert.interpreter", "tflite")
    batch_size = options.batch_size or 1
    backend = TFLiteBackend()
    cache = scratch / "tflite"
    with translated_extras("tflite"):
        try:
            converted = backend.convert(workload, batch_size, cache)
            prepared = backend.prepare(workload, "cpu", batch_size, cache)
        except BackendError as exc:
            raise ExportError(str(exc)) from exc
    staging = scratch / "version"
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / MODEL_FILE
    shutil.copyfile(converted, target)
    key, in_names, out_names = _signature(target)
    described_in, described_out = prepared.info["inputs"], prepared.info["outputs"]
    specs = []
    for items, description in ((described_in, descriptions[0]), (described_out, descriptions[1])):
        specs.append(
            [
                tensor_spec(
                    item["name"],
                    dtype_name(item["dtype"], "tflite"),
                    item["shape"],
                    description if position == 0 else None,
                )
                for position, item in enumerate(items)
            ]
        )
    tensor_names = {}
    if len(in_names) == len(described_in) and len(out_names) == len(described_out):
        tensor_names = {
            item["name"]: signature_name
            for item, signature_name in zip(
                [*described_in, *described_out], [*in_names, *out_names], strict=True
            )
        }
    return Converted(
        staging=staging,
        files={MODEL_FILE: (target, "model")},
        inputs=specs[0],
        outputs=specs[1],
        runtime="ai-edge-litert",
        batch_size=batch_size,
        run=prepared.predict,
        runtime_options={
            "batch_size": batch_size,
            "signature": key,
            "tensor_names": tensor_names,
        },
        close=prepared.close,
    )
