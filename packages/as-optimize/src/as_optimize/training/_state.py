"""States as JSON plus tensors: nothing is pickled, so loading runs no stored code.

:func:`encode` turns a ``state_dict()`` tree (optimizer, scheduler, grad scaler, RNG) into
JSON with each tensor replaced by ``{"__tensor__": key}`` and collected for a safetensors
file; :func:`decode` reverses it. What JSON cannot say directly is tagged: tuples
(``__tuple__``), mappings whose keys are not all strings (``__items__``, as the optimizer's
integer parameter ids), NaN and infinities (``__float__``), NumPy arrays (``__ndarray__``)
and torch dtypes (``__dtype__``). Anything else (a function, an arbitrary object) cannot
be saved without pickling and raises :class:`CheckpointStateError` naming where it is.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from as_optimize.exceptions import CheckpointStateError, CorruptCheckpointError
from as_optimize.training._torch import load_torch

if TYPE_CHECKING:
    import torch
else:
    torch = load_torch()

__all__ = [
    "capture_rng",
    "decode",
    "encode",
    "model_tensors",
    "restore_model",
    "restore_rng",
]

# Types whose values JSON holds as they are (floats are not: NaN and infinities are tagged).
_PLAIN = frozenset({int, str, bool, type(None)})
_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__", "__ndarray__", "__dtype__")


def encode(value: object, tensors: dict[str, torch.Tensor], where: str) -> object:
    """``value`` as JSON, its tensors moved to ``tensors`` under keys derived from ``where``.

    Raises:
        CheckpointStateError: A value that JSON and safetensors cannot hold.
    """
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()  # a copy of its own
        elif not tensor.is_contiguous() or _shares_storage(tensor):
            # safetensors refuses views of a larger storage; a contiguous copy of our own.
            tensor = tensor.contiguous().clone()
        # Otherwise the tensor itself: the caller serialises it at once (a snapshot's
        # bytes are the copy), and clones tensors that share a storage (_own_copies).
        tensors[where] = tensor
        return {"__tensor__": where}
    if isinstance(value, tuple | list):
        if all(type(v) in _PLAIN for v in value):
            items = list(value)  # the common case (a generator's state): no recursion
        else:
            items = [encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        return _encode_mapping(value, tensors, where)
    return _encode_other(value, tensors, where)


def _encode_mapping(
    value: Mapping[object, object], tensors: dict[str, torch.Tensor], where: str
) -> object:
    if all(isinstance(k, str) and k not in _TAGS for k in value):
        return {str(k): encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
    items = []
    for k, v in value.items():
        if not isinstance(k, str | int | float | bool) and k is not None:
            raise CheckpointStateError(
                f"cannot save {where}: a key of type {type(k).__name__} ({k!r}); "
                "keys must be strings, numbers, booleans or None"
            )
        items.append([k, encode(v, tensors, f"{where}.{k}")])
    return {"__items__": items}


def _encode_other(value: object, tensors: dict[str, torch.Tensor], where: str) -> object:
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": {"dtype": str(value.dtype), "data": value.tolist()}}
    if isinstance(value, np.generic):
        return encode(value.item(), tensors, where)
    raise CheckpointStateError(
        f"cannot save {where.lstrip('.')}: a {type(value).__module__}."
        f"{type(value).__qualname__} is not a tensor, number, string, boolean, None, list, "
        "tuple, mapping or NumPy array, and checkpoints pickle nothing; keep such values "
        "out of state_dict()"
    )


def decode(value: object, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    """Reverse :func:`encode`.

    Raises:
        CorruptCheckpointError: A tag that is malformed or names a tensor that is missing.
    """
    if isinstance(value, list):
        return [decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, body),) = value.items()
        if tag in _TAGS:
            return _decode_tag(tag, body, tensors, where)
    return {k: decode(v, tensors, f"{where}.{k}") for k, v in value.items()}


def _decode_tag(tag: str, body: object, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    try:
        if tag == "__tensor__":
            return tensors[str(body)]
        if tag == "__tuple__" and isinstance(body, list):
            return tuple(decode(v, tensors, where) for v in body)
        if tag == "__items__" and isinstance(body, list):
            return {k: decode(v, tensors, f"{where}.{k}") for k, v in body}
        if tag == "__float__":
            return float(str(body))
        if tag == "__ndarray__" and isinstance(body, dict):
            return np.asarray(body["data"], dtype=np.dtype(str(body["dtype"])))
        if tag == "__dtype__":
            dtype = getattr(torch, str(body))
            if isinstance(dtype, torch.dtype):
                return dtype
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{where}: malformed {tag} entry ({exc})") from exc
    raise CorruptCheckpointError(f"{where}: malformed {tag} entry")


# -- model weights -------------------------------------------------------------------------


def model_tensors(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The model's state as tensors safetensors accepts, and the aliases of shared ones.

    Tied weights (one tensor under two names) are stored once; ``aliases`` maps each
    other name to the stored one.

    Raises:
        CheckpointStateError: An entry of ``state_dict()`` that is not a tensor.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[object, ...], str] = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointStateError(
                f"cannot save model.{name}: a {type(value).__name__}, not a tensor"
            )
        tensor = value.detach()
        identity = (
            tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            str(tensor.dtype),
        )
        if tensor.numel() and identity in seen:
            aliases[name] = seen[identity]
            continue
        seen[identity] = name
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        elif not tensor.is_contiguous() or _shares_storage(tensor):
            tensor = tensor.contiguous().clone()
        tensors[name] = tensor
    return tensors, aliases


def _shares_storage(tensor: torch.Tensor) -> bool:
    # safetensors refuses tensors whose storage holds more than they do (views of others).
    return bool(tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size())


def restore_model(
    model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], aliases: Mapping[str, str]
) -> None:
    """Load weights saved by :func:`model_tensors` into ``model`` (strictly: same names).

    Raises:
        CorruptCheckpointError: The names do not match the model's.
    """
    full = dict(tensors)
    for name, target in aliases.items():
        if target not in tensors:
            raise CorruptCheckpointError(f"model weight {name} is an alias of missing {target}")
        full[name] = tensors[target]
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as exc:
        raise CorruptCheckpointError(
            f"the checkpoint's weights do not fit the model: {exc}"
        ) from exc


# -- random number generators --------------------------------------------------------------


def capture_rng(device_types: set[str]) -> dict[str, object]:
    """The states of Python's, NumPy's and torch's global generators (CPU, CUDA, MPS)."""
    state: dict[str, object] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    cuda_ready = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    if "cuda" in device_types and cuda_ready:
        state["cuda"] = torch.cuda.get_rng_state_all()
    if "mps" in device_types and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: Mapping[str, Any]) -> list[str]:
    """Set the global generators from :func:`capture_rng`'s output.

    Returns:
        Warnings for generators the checkpoint has but this machine has not (CUDA, MPS).
    """
    notes: list[str] = []
    python = state.get("python")
    if python is not None:
        version, internal, gauss = python
        random.setstate((version, tuple(internal), gauss))
    numpy_state = state.get("numpy")
    if numpy_state is not None:
        np.random.set_state(tuple(numpy_state))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(state["cuda"]))
        else:
            notes.append("the checkpoint holds CUDA generator states but CUDA is not available")
    if "mps" in state:
        if torch.backends.mps.is_available():
            torch.mps.set_rng_state(state["mps"])
        else:
            notes.append("the checkpoint holds an MPS generator state but MPS is not available")
    return notes
