"""The one setup of the inference runtimes, shared by the benchmark and the server.

as-bench's ``onnxruntime`` and ``tflite`` backends and as-deploy's model server open their
sessions here, with the same :class:`RuntimeOptions`, so that a benchmark measures what
the server runs: the same thread counts, the same spinning policy, the same providers.

The runtime libraries are imported only when a function here is called; the package that
calls it declares them (``as-bench[onnx]``, ``as-deploy``) and checks them first with
:func:`as_core.extras.require`, which names the extra to install.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEQUANTIZE_AT_LOAD",
    "STORED_WEIGHTS_KEY",
    "GraphOptimization",
    "ProviderSpec",
    "RuntimeOptions",
    "available_cpus",
    "litert_interpreter",
    "litert_signature_order",
    "onnxruntime_session",
    "onnxruntime_session_options",
]

#: ONNX Runtime's graph optimization levels, by name.
GraphOptimization = Literal["disable", "basic", "extended", "all"]

#: An ONNX Runtime execution provider: a name, or a name with its options.
ProviderSpec = str | tuple[str, dict[str, Any]]

#: The ONNX model metadata entry (``metadata_props``) that marks a model whose weights are
#: stored quantized (``DequantizeLinear`` on initializers) only to make the file smaller,
#: its arithmetic meant to stay fp32. Its value is :data:`DEQUANTIZE_AT_LOAD`.
STORED_WEIGHTS_KEY = "as_toolkit.stored_weights"
DEQUANTIZE_AT_LOAD = "dequantize-at-load"

_ORT_LEVELS: dict[str, str] = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime runs a model: threads, spinning, providers, graph optimization.

    Attributes:
        intra_op_threads: Threads inside one operator (ONNX Runtime), or the interpreter's
            threads (LiteRT); ``None`` lets ONNX Runtime choose and gives LiteRT every CPU
            this process may use.
        inter_op_threads: Threads across operators (ONNX Runtime); ``None`` lets it choose.
        spin_wait: Whether idle ONNX Runtime worker threads spin waiting for work. Off by
            default: spinning answers the next call a little sooner, but burns the cores
            that a server's event loop, or another process, needs between inferences.
        providers: ONNX Runtime execution providers in order of preference.
        graph_optimization: ONNX Runtime's graph optimization level.
        dequantize_stored_weights: For a model marked with :data:`STORED_WEIGHTS_KEY`,
            dequantize its stored weights once, when the session opens (ONNX Runtime's
            constant folding, ``session.disable_quant_qdq``), so it runs at fp32 speed
            from a smaller file. Off, or for an unmarked model, ONNX Runtime keeps the
            ``DequantizeLinear`` nodes and runs them on every call (about twice the
            latency of fp32 on the digits CNN at batch 1). Models with quantized
            activations (static QDQ) are never marked: their fusions need the option off.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    spin_wait: bool = False
    providers: tuple[ProviderSpec, ...] = field(default=("CPUExecutionProvider",))
    graph_optimization: GraphOptimization = "all"
    dequantize_stored_weights: bool = True

    def __post_init__(self) -> None:
        """Reject thread counts below one and unknown optimization levels."""
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None), not {value}")
        if self.graph_optimization not in _ORT_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {sorted(_ORT_LEVELS)}, "
                f"not {self.graph_optimization!r}"
            )
        if not self.providers:
            raise ValueError("providers must name at least one execution provider")

    def describe(self) -> dict[str, Any]:
        """The options as plain values, for result records and logs."""
        return {
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "spin_wait": self.spin_wait,
            "providers": [p if isinstance(p, str) else p[0] for p in self.providers],
            "graph_optimization": self.graph_optimization,
            "dequantize_stored_weights": self.dequantize_stored_weights,
        }


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def onnxruntime_session_options(
    options: RuntimeOptions, *, dequantize_stored_weights: bool = False
) -> Any:
    """An ``onnxruntime.SessionOptions`` set from ``options``.

    With ``dequantize_stored_weights``, ONNX Runtime's QDQ handling is off, so its constant
    folding turns ``DequantizeLinear`` nodes on initializers into fp32 initializers.
    """
    ort: Any = importlib.import_module("onnxruntime")  # untyped: no stubs ship
    session_options = ort.SessionOptions()
    if dequantize_stored_weights:
        session_options.add_session_config_entry("session.disable_quant_qdq", "1")
    if options.intra_op_threads is not None:
        session_options.intra_op_num_threads = options.intra_op_threads
    if options.inter_op_threads is not None:
        session_options.inter_op_num_threads = options.inter_op_threads
    spin = "1" if options.spin_wait else "0"
    session_options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    session_options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    session_options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _ORT_LEVELS[options.graph_optimization]
    )
    return session_options


def onnxruntime_session(model: Path | str | bytes, options: RuntimeOptions) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model`` (a path or the model's bytes).

    External weights load from beside the model file. What ONNX Runtime raises is passed
    on: the caller names the model and the package in its own error.

    A model marked with :data:`STORED_WEIGHTS_KEY` (weights stored quantized, arithmetic
    fp32) is opened a second time with its weights dequantized at load, unless
    ``options.dequantize_stored_weights`` is off or graph optimization is disabled.
    """
    ort: Any = importlib.import_module("onnxruntime")
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(
        source,
        sess_options=onnxruntime_session_options(options),
        providers=list(options.providers),
    )
    if not options.dequantize_stored_weights or options.graph_optimization == "disable":
        return session
    marked = session.get_modelmeta().custom_metadata_map.get(STORED_WEIGHTS_KEY)
    if marked != DEQUANTIZE_AT_LOAD:
        return session
    del session
    return ort.InferenceSession(
        source,
        sess_options=onnxruntime_session_options(options, dequantize_stored_weights=True),
        providers=list(options.providers),
    )


def litert_interpreter(model_path: Path | str, options: RuntimeOptions) -> Any:
    """A LiteRT ``Interpreter`` for the ``.tflite`` file, tensors allocated.

    Its thread count is ``options.intra_op_threads``, or every CPU this process may use.
    """
    module: Any = importlib.import_module("ai_edge_litert.interpreter")
    interpreter = module.Interpreter(
        model_path=str(model_path), num_threads=options.intra_op_threads or available_cpus()
    )
    interpreter.allocate_tensors()
    return interpreter


def litert_signature_order(names: Sequence[str]) -> list[str]:
    """A LiteRT signature's input names (``args_0``, ``args_10``, ``args_2``) in argument order.

    litert-torch names a converted model's inputs after their position, and the signature
    lists them sorted as text; names without a trailing number are kept as given.
    """
    keyed: list[tuple[int, str]] = []
    for name in names:
        match = re.search(r"(\d+)$", name)
        if match is None:
            return list(names)
        keyed.append((int(match.group(1)), name))
    return [name for _, name in sorted(keyed)]
