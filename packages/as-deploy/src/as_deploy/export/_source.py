"""The model to export: an as-bench workload, with what the manifest says about it.

``source`` is an as-bench built-in workload name (``digits-cnn``, ``mlp``, ``minilm``) or a
``pkg.module:factory`` spec; :func:`load_source` hands it to
:func:`as_bench.export.load_workload`. A malformed spec or an unknown name is a usage
error; a factory that fails to import or run is an export error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from as_deploy.exceptions import ExportError, UsageError
from as_deploy.export._extras import translated_extras

__all__ = [
    "DIGITS_LABELS",
    "ParityData",
    "default_name",
    "describe_source",
    "load_source",
    "parity_data",
]

Array = npt.NDArray[Any]

#: Class labels of the built-in digits classifiers, in output order.
DIGITS_LABELS: list[str] = [str(digit) for digit in range(10)]

_DIGITS_WORKLOADS = {"digits-cnn": [None, 1, 8, 8], "mlp": [None, 64]}


def load_source(source: str, fmt: str) -> Any:
    """The as-bench workload named by ``source`` (an ``as_bench.workloads.Workload``).

    Raises:
        UsageError: ``source`` is empty, not a built-in name and not ``pkg.module:factory``.
        MissingExtraError: A library the built-in needs is not installed.
        ExportError: The factory's module failed to import, or the factory failed.
    """
    from as_bench.exceptions import WorkloadError
    from as_bench.export import is_factory_spec, load_workload, parse_factory_spec
    from as_bench.workloads import builtin_workloads

    spec = source.strip()
    builtins = builtin_workloads()
    if spec not in builtins:
        if not is_factory_spec(spec):
            raise UsageError(
                f"unknown model source {source!r}",
                hint=f"give a built-in ({', '.join(builtins)}) or 'pkg.module:factory'",
            )
        try:
            parse_factory_spec(spec)
        except WorkloadError as exc:
            raise UsageError(str(exc), hint="write it as 'pkg.module:factory'") from exc
    try:
        with translated_extras(fmt):
            return load_workload(spec)
    except WorkloadError as exc:
        raise ExportError(f"could not load the model {source!r}: {exc}") from exc


def default_name(source: str) -> str:
    """A model name derived from ``source``, valid as a repository name.

    A built-in keeps its name (``digits-cnn``); ``pkg.models:make_net`` becomes
    ``models-make_net`` (the module's last part and the factory, lowercased, other
    characters as ``-``).
    """
    spec = source.strip()
    if ":" in spec:
        module, _, attribute = spec.partition(":")
        spec = f"{module.split('.')[-1]}-{attribute.split('.')[-1]}"
    name = re.sub(r"[^a-z0-9._-]+", "-", spec.lower()).strip("-._")[:64].rstrip("-._")
    return name or "model"


def describe_source(workload: Any) -> dict[str, Any]:
    """Labels, preprocessing and tensor descriptions the manifest records for ``workload``.

    The built-in digits classifiers get labels ``"0"``..``"9"`` and their preprocessing;
    ``minilm`` its tokenisation; anything else nothing (pass ``labels=`` yourself).
    """
    name = workload.name
    if name in _DIGITS_WORKLOADS:
        shape = _DIGITS_WORKLOADS[name]
        return {
            "labels": list(DIGITS_LABELS),
            "preprocessing": {
                "input": "8x8 grayscale digit image, as scikit-learn's load_digits gives it",
                "pixel_values": "integers 0..16 (scikit-learn's digits scale), divided by 16",
                "scale": 1 / 16,
                "value_range": [0.0, 1.0],
                "layout": "NCHW" if len(shape) == 4 else "flattened row-major 8x8",
                "shape": shape,
                "dtype": "float32",
                "output": "logits over the labels, in label order; softmax gives probabilities",
            },
            "input_description": "8x8 grayscale images, pixel values 0..16 divided by 16",
            "output_description": "logits of the digits 0-9",
        }
    if name == "minilm":
        return {
            "labels": None,
            "preprocessing": {
                "tokenizer": "all-MiniLM-L6-v2 (BERT WordPiece, uncased)",
                "max_length": int(workload.tags.get("seq_len", 32)),
                "padding": "max_length, attention_mask 1 for real tokens",
                "dtype": "int64",
                "output": "L2-normalised sentence embedding (mean pooling over real tokens)",
            },
            "input_description": None,
            "output_description": "sentence embedding",
        }
    return {"labels": None, "preprocessing": {}, "input_description": None,
            "output_description": None}  # fmt: skip


@dataclass(frozen=True)
class ParityData:
    """The inputs a parity check runs on.

    Attributes:
        inputs: One array per model input, first axis = examples.
        description: Where they came from, in words, for the report.
    """

    inputs: tuple[Array, ...]
    description: str

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.inputs[0].shape[0])


def parity_data(workload: Any, count: int | None) -> ParityData:
    """The workload's held-out data (or its example inputs) for a parity check.

    Args:
        workload: The as-bench workload.
        count: How many inputs; ``None`` takes every held-out example (32 inputs when the
            workload has no data). Held-out data with fewer rows is repeated cyclically.

    Raises:
        UsageError: ``count`` is less than 1.
    """
    if count is not None and count < 1:
        raise UsageError(f"parity_inputs must be at least 1, not {count}")
    dataset = workload.dataset
    if dataset is not None and len(dataset) > 0:
        rows = len(dataset) if count is None else count
        index = np.arange(rows) % len(dataset)
        arrays = tuple(np.ascontiguousarray(np.take(a, index, axis=0)) for a in dataset.inputs)
        repeated = " (repeated)" if rows > len(dataset) else ""
        return ParityData(arrays, f"{dataset.name}: {rows} rows{repeated}")
    rows = 32 if count is None else count
    arrays = tuple(np.ascontiguousarray(a) for a in workload.inputs(rows))
    return ParityData(arrays, f"{rows} example inputs of {workload.name!r}")
