"""What every format's converter hands back, and the options they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_deploy.exceptions import ExportError
from as_deploy.manifest import TensorSpec

__all__ = ["Converted", "dtype_name", "tensor_spec"]

Array = npt.NDArray[Any]

_DTYPES = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
    "bool", "string",
}  # fmt: skip


@dataclass
class Converted:
    """One converted model, laid out in ``staging`` as its version folder will be.

    Attributes:
        staging: The folder holding the files, at their manifest paths.
        files: Manifest path -> (file under ``staging``, role).
        inputs: The model's inputs, as its runtime reports them.
        outputs: The model's outputs, as its runtime reports them.
        runtime: The runtime that serves the file (``"onnxruntime"``).
        batch_size: The fixed batch size, or ``None`` for a dynamic batch axis.
        run: Runs one batch in that runtime; ``None`` where it cannot run here.
        not_run_reason: Why ``run`` is ``None``.
        runtime_options: What the manifest's ``runtime_options`` records.
        close: Frees the runtime's resources.
    """

    staging: Path
    files: dict[str, tuple[Path, str]]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runtime: str
    batch_size: int | None
    run: Callable[[tuple[Array, ...]], list[Array]] | None
    not_run_reason: str | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


def dtype_name(dtype: Any, where: str) -> str:
    """The manifest dtype name of a NumPy dtype (or dtype name).

    Raises:
        ExportError: The manifest has no such dtype.
    """
    name = str(dtype) if isinstance(dtype, str) else np.dtype(dtype).name
    if name.startswith("<U") or name == "object" or name == "str":
        name = "string"
    if name not in _DTYPES:
        raise ExportError(f"{where}: tensors of dtype {name} cannot be described in a manifest")
    return name


def tensor_spec(name: str, dtype: str, shape: Any, description: str | None = None) -> TensorSpec:
    """A manifest :class:`TensorSpec`; symbolic or negative dimensions become ``None``."""
    dims: list[int | None] = []
    for dim in shape:
        dims.append(int(dim) if isinstance(dim, int | np.integer) and int(dim) >= 0 else None)
    return TensorSpec.model_validate(
        {"name": name, "dtype": dtype, "shape": dims, "description": description}
    )
