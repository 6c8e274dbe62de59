"""ONNX export: as-bench's exporter (``torch.onnx.export(dynamo=True)``), run in ONNX Runtime.

The session is opened by :func:`as_core.runtime.onnxruntime_session` with the server's
default :class:`~as_core.runtime.RuntimeOptions`, so the parity check runs the model as the
server will.

The batch axis is dynamic where the model allows it. A model under 2 GB is stored as one
self-contained ``model.onnx`` (the exporter writes weights to ``model.onnx.data``; they
are folded back in); a larger one keeps its weights in ``model.onnx.data`` beside it, listed
in the manifest with role ``"weights"``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from as_core.runtime import RuntimeOptions, onnxruntime_session
from as_deploy.exceptions import ExportError
from as_deploy.export._extras import require, translated_extras
from as_deploy.export._formats import Converted, tensor_spec
from as_deploy.export._options import ExportOptions

__all__ = ["ORT_DTYPES", "OpenedOnnx", "convert_onnx", "open_onnx"]

Array = npt.NDArray[Any]

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
# protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph.
_INLINE_LIMIT = 2**31 - 64 * 2**20

#: ONNX Runtime's type strings -> manifest dtypes.
ORT_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


# The exporter's own libraries log every pass at INFO; an application that shows INFO
# (the CLI does) would print dozens of lines per export. Their warnings still show.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _specs(nodes: list[Any], descriptions: list[str | None]) -> list[Any]:
    specs = []
    for node, description in zip(nodes, descriptions, strict=False):
        dtype = ORT_DTYPES.get(node.type)
        if dtype is None:
            raise ExportError(f"onnx: tensor {node.name!r} has type {node.type}, not supported")
        specs.append(tensor_spec(node.name, dtype, node.shape, description))
    return specs


def _self_contained(exported: Path, staging: Path) -> dict[str, tuple[Path, str]]:
    """Write the model into ``staging``: one file when it fits, else model plus weights."""
    onnx = require("onnx", "onnx")
    model = onnx.load(str(exported), load_external_data=True)
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / MODEL_FILE
    if model.ByteSize() < _INLINE_LIMIT:
        onnx.save_model(model, str(target), save_as_external_data=False)
        return {MODEL_FILE: (target, "model")}
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=DATA_FILE,
        size_threshold=1024,
    )
    return {MODEL_FILE: (target, "model"), DATA_FILE: (staging / DATA_FILE, "weights")}


def convert_onnx(
    workload: Any,
    scratch: Path,
    options: ExportOptions,
    descriptions: tuple[str | None, str | None] = (None, None),
) -> Converted:
    """Export ``workload`` to ONNX in ``scratch`` and open it in ONNX Runtime.

    Args:
        workload: The as-bench workload.
        scratch: An empty folder this call may fill.
        options: ``opset`` is used; ``batch_size`` is the example batch for tracing.
        descriptions: Words for the first input and the first output, if known.

    Raises:
        ExportError: The export failed or ONNX Runtime cannot load the result.
    """
    from as_bench.exceptions import BackendError
    from as_bench.export import export_onnx

    require("onnxruntime", "onnx")
    # A dynamic export traces with at least two rows; a static fallback uses this batch.
    example_batch = options.batch_size or 1
    with translated_extras("onnx"), _quiet_exporter_logs():
        try:
            exported, dynamic = export_onnx(
                workload, example_batch, scratch / "exported", opset=options.opset
            )
        except BackendError as exc:
            raise ExportError(str(exc)) from exc
    files = _self_contained(exported, scratch / "version")
    shutil.rmtree(scratch / "exported", ignore_errors=True)
    opened = open_onnx(files[MODEL_FILE][0], descriptions, options.opset)
    return Converted(
        staging=scratch / "version",
        files=files,
        inputs=opened.inputs,
        outputs=opened.outputs,
        runtime="onnxruntime",
        batch_size=None if dynamic else example_batch,
        run=opened.run,
        runtime_options={**opened.runtime_options, "dynamic_batch": dynamic},
        close=opened.close,
    )


@dataclass
class OpenedOnnx:
    """An ONNX file opened in ONNX Runtime as the server opens it, described for a manifest.

    Attributes:
        inputs: Its inputs, as the session reports them.
        outputs: Its outputs, as the session reports them.
        run: Runs one batch (arrays in input order), returns the outputs in order.
        runtime_options: ``opset``, ``opset_imports`` and ``ir_version`` of the file.
        close: Frees the session.
    """

    inputs: list[Any]
    outputs: list[Any]
    run: Callable[[tuple[Array, ...]], list[Array]]
    runtime_options: dict[str, Any]
    close: Callable[[], None]


def open_onnx(
    path: Path,
    descriptions: tuple[str | None, str | None] = (None, None),
    default_opset: int | None = None,
) -> OpenedOnnx:
    """Open ``path`` in ONNX Runtime (the server's default options) and describe it.

    Args:
        path: The ONNX file (its external data, if any, beside it).
        descriptions: Words for the first input and the first output, if known.
        default_opset: The opset to record when the file declares none for ``ai.onnx``.

    Raises:
        ExportError: ONNX Runtime cannot load the file, or a tensor has a type a
            manifest cannot describe.
    """
    try:
        session = onnxruntime_session(path, RuntimeOptions())
    except Exception as exc:
        raise ExportError(f"onnx: ONNX Runtime cannot load {path}: {exc}") from exc
    onnx = require("onnx", "onnx")
    model = onnx.load(str(path), load_external_data=False)
    opsets = {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import}
    input_nodes, output_nodes = session.get_inputs(), session.get_outputs()
    names = [node.name for node in input_nodes]
    n_in, n_out = len(input_nodes), len(output_nodes)
    inputs = _specs(input_nodes, [descriptions[0]] + [None] * (n_in - 1))
    outputs = _specs(output_nodes, [descriptions[1]] + [None] * (n_out - 1))
    holder: list[Any] = [session]

    def run(batch: tuple[Array, ...]) -> list[Array]:
        return list(holder[0].run(None, dict(zip(names, batch, strict=True))))

    return OpenedOnnx(
        inputs=inputs,
        outputs=outputs,
        run=run,
        runtime_options={
            "opset": opsets.get("ai.onnx", default_opset),
            "opset_imports": opsets,
            "ir_version": int(model.ir_version),
        },
        close=holder.clear,
    )
