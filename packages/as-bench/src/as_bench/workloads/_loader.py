"""Load a user's own model as a workload from a ``pkg.module:factory`` spec.

The factory is called with no arguments and returns either

* a :class:`Workload` (full control: task, dataset, metric, input names), used as is; or
* ``(torch_module, example_inputs)``: ``example_inputs`` is one tensor or array, or a
  tuple/list of them, first axis = batch. It becomes a workload named after the spec with
  task ``"regression"`` (outputs are compared numerically, there is no dataset or metric);
  ``inputs(batch_size)`` repeats the example's rows cyclically along the batch axis and
  cuts at ``batch_size`` (an example of 4 rows gives rows 0,1,2,3,0,1,2 for 7), so inputs
  stay real data and identical for every backend.

The module is snapshot once (``copy.deepcopy``) and every ``make_model()`` returns a fresh
copy of that snapshot: a factory that initialises weights at random would otherwise hand
the reference backend and the candidate different models.

Like uvicorn, a module that is not importable from ``sys.path`` is also looked for in the
current directory, since ``as-bench`` runs as an installed script whose path is elsewhere.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from as_bench.exceptions import WorkloadError
from as_bench.workloads._base import Workload

__all__ = ["is_factory_spec", "load_factory_workload", "parse_spec", "resolve_factory"]

Array = npt.NDArray[Any]


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` names a model of the user's own (``pkg.module:factory``), not a built-in."""
    return ":" in spec


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``"pkg.module:factory"`` into module and attribute path, checking both."""
    module_name, sep, attribute = spec.partition(":")
    parts_ok = all(part.isidentifier() for part in module_name.split(".")) and all(
        part.isidentifier() for part in attribute.split(".")
    )
    if not sep or not parts_ok:
        msg = (
            f"workload spec {spec!r} is not 'pkg.module:factory' (a dotted module path, one "
            "colon, then a function name in that module)"
        )
        raise WorkloadError(msg)
    return module_name, attribute


def resolve_factory(spec: str) -> Callable[[], Any]:
    """Import the module of ``spec`` and return its factory, without calling it.

    Raises:
        WorkloadError: The spec is malformed, the module is not found or fails to import,
            or the attribute is missing or not callable.
    """
    module_name, attribute = parse_spec(spec)
    return _resolve(_import(module_name, spec), attribute, spec)


def load_factory_workload(spec: str) -> Workload:
    """Import the module of ``spec``, call its factory and return the workload it describes.

    Raises:
        WorkloadError: The module is not found or fails to import, the attribute is missing
            or not callable, the factory raises, or it returns something else than a
            ``Workload`` or ``(torch.nn.Module, example_inputs)``.
    """
    factory = resolve_factory(spec)
    attribute = parse_spec(spec)[1]
    try:
        result = factory()
    except Exception as exc:
        msg = f"workload {spec!r}: the factory {attribute}() raised {type(exc).__name__}: {exc}"
        raise WorkloadError(msg) from exc
    if isinstance(result, Workload):
        return result
    torch = sys.modules.get("torch")  # a torch module can only exist if torch is imported
    if (
        isinstance(result, tuple | list)
        and len(result) == 2
        and torch is not None
        and isinstance(result[0], torch.nn.Module)
    ):
        return _wrap_module(result[0], result[1], spec)
    msg = (
        f"workload {spec!r}: the factory {attribute}() returned {_describe(result)}; it must "
        "return an as_bench Workload or a tuple (torch.nn.Module, example_inputs)"
    )
    raise WorkloadError(msg)


def _import(module_name: str, spec: str) -> ModuleType:
    try:
        return _import_here_or_cwd(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            msg = (
                f"workload {spec!r}: module {module_name!r} not found (looked on sys.path and "
                f"in the current directory {Path.cwd()}); is its package installed?"
            )
        else:
            msg = (
                f"workload {spec!r}: module {module_name!r} was found but importing it "
                f"failed: it imports {missing!r}, which is not installed"
            )
        raise WorkloadError(msg) from exc
    except Exception as exc:
        msg = f"workload {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        raise WorkloadError(msg) from exc


def _import_here_or_cwd(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = str(Path.cwd())
        top = module_name.split(".")[0]
        if exc.name != top or cwd in sys.path or "" in sys.path:
            raise
    sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    finally:
        # Once imported the module stays in sys.modules; the path entry is not needed.
        sys.path.remove(cwd)


def _resolve(module: ModuleType, attribute: str, spec: str) -> Callable[[], Any]:
    target: Any = module
    for depth, part in enumerate(attribute.split(".")):
        if not hasattr(target, part):
            owner = module.__name__ + "".join("." + p for p in attribute.split(".")[:depth])
            where = getattr(module, "__file__", None) or module.__name__
            msg = f"workload {spec!r}: {owner!r} ({where}) has no attribute {part!r}"
            raise WorkloadError(msg)
        target = getattr(target, part)
    if not callable(target):
        msg = f"workload {spec!r}: {attribute!r} is {_describe(target)}, not a callable factory"
        raise WorkloadError(msg)
    factory: Callable[[], Any] = target
    return factory


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        inner = ", ".join(type(item).__name__ for item in value[:4])
        return f"a {type(value).__name__} of length {len(value)} ({inner})"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def _example_arrays(example: Any, spec: str) -> tuple[Array, ...]:
    items = tuple(example) if isinstance(example, tuple | list) else (example,)
    arrays: list[Array] = []
    for position, item in enumerate(items):
        if hasattr(item, "detach") and hasattr(item, "cpu"):  # a torch.Tensor
            item = item.detach().cpu().numpy()
        if not isinstance(item, np.ndarray) or item.ndim == 0 or item.shape[0] == 0:
            msg = (
                f"workload {spec!r}: example input {position} is {_describe(item)}"
                f"{' of shape ' + str(item.shape) if isinstance(item, np.ndarray) else ''}; "
                "each must be a tensor or array with a non-empty first (batch) axis"
            )
            raise WorkloadError(msg)
        arrays.append(np.array(item))  # own copy: later changes by the caller do not leak in
    if not arrays:
        raise WorkloadError(f"workload {spec!r}: the example inputs are empty")
    return tuple(arrays)


def _cycled(examples: tuple[Array, ...], batch_size: int) -> tuple[Array, ...]:
    return tuple(np.take(a, np.arange(batch_size) % a.shape[0], axis=0) for a in examples)


def _fresh_copy(module: Any) -> Any:
    return copy.deepcopy(module)


def _input_names(module: Any, count: int) -> tuple[str, ...]:
    # Names of forward()'s positional parameters make readable ONNX / Core ML inputs.
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a C-implemented forward)
        parameters = []
    positional = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) >= count:
        return tuple(positional[:count])
    return ("input",) if count == 1 else tuple(f"input_{i}" for i in range(count))


def _wrap_module(module: Any, example: Any, spec: str) -> Workload:
    import torch

    arrays = _example_arrays(example, spec)
    snapshot = copy.deepcopy(module).eval().to("cpu")
    try:
        with torch.inference_mode():
            outputs = snapshot(*(torch.from_numpy(np.array(a)) for a in arrays))
    except Exception as exc:
        msg = (
            f"workload {spec!r}: the module fails on its own example inputs "
            f"({type(exc).__name__}: {exc})"
        )
        raise WorkloadError(msg) from exc
    if isinstance(outputs, torch.Tensor):
        count = 1
    elif isinstance(outputs, tuple | list) and all(isinstance(o, torch.Tensor) for o in outputs):
        count = len(outputs)
    else:
        msg = (
            f"workload {spec!r}: the module returns {_describe(outputs)}; as-bench needs a "
            "tensor or a tuple of tensors"
        )
        raise WorkloadError(msg)
    parameters = sum(p.numel() for p in snapshot.parameters())
    return Workload(
        name=spec,
        description=f"{type(module).__name__} from {spec}",
        task="regression",
        make_model=partial(_fresh_copy, snapshot),
        make_inputs=partial(_cycled, arrays),
        input_names=_input_names(snapshot, len(arrays)),
        output_names=("output",) if count == 1 else tuple(f"output_{i}" for i in range(count)),
        dataset=None,
        metric_name=None,
        dynamic_batch=True,
        tags={"parameters": str(parameters), "source": spec},
    )
