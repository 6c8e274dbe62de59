"""Which weighted nodes lose the most when dynamic int8 quantizes them, measured on data.

For each node that ONNX Runtime's dynamic quantizer rewrites (a MatMul, Gemm or Gather
whose weight is an initializer), the baseline is quantized with that node alone
(``quantize_dynamic(..., nodes_to_quantize=[node])``), both models run on the same
examples, and the node's cost is how far the mean cosine of the outputs to the fp32
outputs falls. The most sensitive nodes come first; ``ort-dynamic-int8`` spares the top
``keep`` of them (fp32, or 8-bit weight blocks).

A ranking costs one quantization and one session per node (about 0.75 s a node for a
90 MB transformer on one thread), so it is kept per baseline file, per-channel setting
and examples for the life of the process: every setting of a search reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_core.extras import require
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "NodeSensitivity",
    "SensitivityRanking",
    "clear_sensitivity_cache",
    "dynamic_int8_sensitivity",
    "weighted_nodes",
]

Array = npt.NDArray[Any]

#: Which input of a node holds the weight a quantizer rewrites.
_WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Gather": 0}

#: At most this many examples are run per node (the ranking's cost grows with them).
MAX_EXAMPLES = 16


@dataclass(frozen=True)
class NodeSensitivity:
    """How much quantizing one node alone costs.

    Attributes:
        name: The node's name in the graph.
        op_type: Its ONNX operator.
        mean_cosine: Mean cosine of the outputs to the fp32 outputs with this node alone
            quantized (1.0: no change).
        min_cosine: The lowest of those cosines.
    """

    name: str
    op_type: str
    mean_cosine: float
    min_cosine: float

    @property
    def drop(self) -> float:
        """How far the mean cosine falls below 1."""
        return 1.0 - self.mean_cosine


@dataclass(frozen=True)
class SensitivityRanking:
    """Nodes ranked most sensitive first, and what the measurement took.

    Attributes:
        nodes: One entry per quantizable node, the largest cosine drop first.
        per_channel: The weight-scale setting the nodes were quantized with.
        examples: How many examples each model ran on.
        seconds: Wall time of the whole ranking (read from the injected clock).
    """

    nodes: tuple[NodeSensitivity, ...]
    per_channel: bool
    examples: int
    seconds: float

    def top(self, count: int) -> list[str]:
        """The names of the ``count`` most sensitive nodes."""
        if count < 0:
            raise CompressionInputError(f"cannot keep {count} nodes in fp32; give 0 or more")
        return [node.name for node in self.nodes[:count]]


_CACHE: dict[tuple[Any, ...], SensitivityRanking] = {}


def clear_sensitivity_cache() -> None:
    """Forget every ranking measured in this process."""
    _CACHE.clear()


def weighted_nodes(baseline: Path, op_types: Iterable[str]) -> list[tuple[str, str]]:
    """``(name, op_type)`` of the nodes of ``op_types`` whose weight is an initializer.

    Raises:
        CompressionInputError: When such a node has no name to pass to the quantizer.
    """
    require("onnx", "compress", error=MissingExtraError)
    import onnx

    wanted = set(op_types) & set(_WEIGHT_INPUT)
    graph = onnx.load(str(baseline), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type not in wanted:
            continue
        index = _WEIGHT_INPUT[node.op_type]
        if len(node.input) <= index or node.input[index] not in initializers:
            continue
        if not node.name:
            raise CompressionInputError(
                f"{baseline}: a {node.op_type} node has no name, so it cannot be kept in fp32"
            )
        found.append((node.name, node.op_type))
    return found


def _key(
    baseline: Path, per_channel: bool, feeds: Sequence[Array], ops: Iterable[str]
) -> tuple[Any, ...]:
    stat = baseline.stat()
    digest = hashlib.sha256()
    for array in feeds:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return (
        str(baseline.resolve()),
        stat.st_mtime_ns,
        stat.st_size,
        per_channel,
        tuple(sorted(ops)),
        digest.hexdigest(),
    )


def _flat(outputs: Sequence[Array], rows: int) -> Array:
    """Every output as float64, one row per example, side by side."""
    return np.concatenate(
        [np.asarray(out, dtype=np.float64).reshape(rows, -1) for out in outputs], axis=1
    )


def _cosines(outputs: Array, reference: Array) -> Array:
    norms = np.linalg.norm(outputs, axis=1) * np.linalg.norm(reference, axis=1)
    dots = (outputs * reference).sum(axis=1)
    same = norms == 0
    return np.where(same, 1.0, dots / np.where(same, 1.0, norms))


class _Runner:
    """Runs a model on the examples, batch by batch (a fixed batch dimension is kept)."""

    def __init__(self, input_names: Sequence[str], examples: Sequence[Array]) -> None:
        self.names = list(input_names)
        self.examples = list(examples)
        self.rows = int(self.examples[0].shape[0])

    def __call__(self, path: Path) -> Array:
        ort: Any = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0].shape[0] if session.get_inputs() else None
        step = first if isinstance(first, int) and first > 0 else self.rows
        usable = self.rows // step * step
        if usable == 0:
            raise CompressionInputError(
                f"{path} takes batches of {step}; only {self.rows} examples to rank nodes on"
            )
        parts: list[Array] = []
        for start in range(0, usable, step):
            feeds = {
                name: array[start : start + step]
                for name, array in zip(self.names, self.examples, strict=True)
            }
            parts.append(_flat(session.run(None, feeds), step))
        return np.concatenate(parts, axis=0)


def dynamic_int8_sensitivity(
    baseline: Path,
    input_names: Sequence[str],
    examples: Sequence[Array],
    *,
    per_channel: bool,
    op_types: Iterable[str] = ("MatMul", "Gemm", "Gather"),
    work_dir: Path | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> SensitivityRanking:
    """Rank ``baseline``'s weighted nodes by what dynamic int8 of each alone costs.

    Args:
        baseline: The fp32 ONNX model.
        input_names: Its input names, in order of ``examples``.
        examples: One array per input, first axis = examples; the first
            :data:`MAX_EXAMPLES` are used.
        per_channel: Per-channel (or per-tensor) weight scales, as the candidate uses.
        op_types: The operators to rank; those the dynamic quantizer rewrites.
        work_dir: Where the one-node models are written, in a temporary folder removed
            afterwards (the system's temporary folder if ``None``).
        clock: Seconds, for the ranking's reported duration.

    Returns:
        The ranking, the largest drop of mean cosine first (ties: lower minimum first).
        The same arguments give the cached ranking without measuring again.

    Raises:
        CompressionInputError: No examples, or a node without a name.
        CompressionError: The quantizer or a session failed on a node.
    """
    require("onnxruntime", "compress", error=MissingExtraError)
    quantization: Any = importlib.import_module("onnxruntime.quantization")
    if not examples or int(examples[0].shape[0]) == 0:
        raise CompressionInputError("ranking nodes by sensitivity needs at least one example")
    feeds = [np.ascontiguousarray(a[:MAX_EXAMPLES]) for a in examples]
    ops = tuple(op_types)
    key = _key(baseline, per_channel, feeds, ops)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    started = clock()
    nodes = weighted_nodes(baseline, ops)
    run = _Runner(input_names, feeds)
    # A protobuf holds at most 2 GB; larger models keep their weights beside the file.
    large = sum(f.stat().st_size for f in baseline.parent.glob(baseline.name + "*")) > 1 << 30
    reference = run(baseline)
    measured = []
    with contextlib.ExitStack() as stack:
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
        # Removed afterwards: one quantized copy of the model per node adds up.
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_dir)))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        stack.callback(root.setLevel, level)
        for name, op_type in nodes:
            one = folder / "one-node.onnx"
            try:
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    quantization.quantize_dynamic(
                        baseline,
                        one,
                        per_channel=per_channel,
                        weight_type=quantization.QuantType.QInt8,
                        nodes_to_quantize=[name],
                        use_external_data_format=large,
                    )
                cosines = _cosines(run(one), reference)
            except Exception as exc:  # the quantizer and sessions raise bare Exceptions
                raise CompressionError(
                    f"ranking {op_type} node {name!r} of {baseline} by sensitivity failed: {exc}"
                ) from exc
            measured.append(
                NodeSensitivity(name, op_type, float(cosines.mean()), float(cosines.min()))
            )
    measured.sort(key=lambda n: (n.mean_cosine, n.min_cosine, n.name))
    ranking = SensitivityRanking(
        tuple(measured), per_channel, int(feeds[0].shape[0]), clock() - started
    )
    _CACHE[key] = ranking
    return ranking
