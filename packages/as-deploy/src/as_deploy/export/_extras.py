"""Which as-deploy extra each export format needs, and the exact hint when it is missing.

Each format is its own extra: ``export`` (ONNX: torch, onnx, onnxscript), ``coreml``
(coremltools) and ``tflite`` (litert-torch, ai-edge-litert). Nothing heavy is imported
here: :func:`check_format` looks the modules up without importing them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import warnings
from collections.abc import Iterator
from types import ModuleType

from as_deploy.exceptions import MissingExtraError

__all__ = [
    "FORMAT_EXTRAS",
    "FORMAT_MODULES",
    "check_format",
    "is_installed",
    "require",
    "translated_extras",
]

#: The as-deploy extra that installs what each format needs.
FORMAT_EXTRAS: dict[str, str] = {"onnx": "export", "coreml": "coreml", "tflite": "tflite"}

#: The modules each format needs, in the order they are checked.
FORMAT_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("torch", "onnx", "onnxscript", "onnxruntime"),
    "coreml": ("torch", "coremltools"),
    "tflite": ("torch", "litert_torch", "ai_edge_litert"),
}

# as-bench extras whose modules every as-deploy format extra also installs: a module of
# theirs that is missing is fixed by the format's as-deploy extra.
_COVERED_BENCH_EXTRAS = frozenset({"torch", "onnx", "coreml", "tflite"})


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_format(fmt: str) -> None:
    """Raise :class:`MissingExtraError` if a module that ``fmt`` needs is not installed.

    Raises:
        MissingExtraError: The message and hint name ``uv add "as-deploy[<extra>]"``.
    """
    extra = FORMAT_EXTRAS[fmt]
    for module in FORMAT_MODULES[fmt]:
        if not is_installed(module):
            raise MissingExtraError(module, extra, f"exporting to {fmt}")


def require(module: str, fmt: str) -> ModuleType:
    """Import ``module`` for format ``fmt``, or raise :class:`MissingExtraError`.

    Old escape sequences in the docstrings of coremltools and torchao warn when compiled
    (an error under ``-W error``); only that warning is silenced, as as-bench does.
    """
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, SyntaxWarning):
                warnings.filterwarnings(
                    "ignore", message="invalid escape sequence", category=category
                )
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module exists but one of its own imports is missing: show that
        raise MissingExtraError(module, FORMAT_EXTRAS[fmt], f"exporting to {fmt}") from exc


@contextlib.contextmanager
def translated_extras(fmt: str) -> Iterator[None]:
    """Turn as-bench's missing-extra errors inside the block into as-deploy's.

    as-bench names its own extras (``as-bench[tflite]``); a user of as-deploy installs
    as-deploy's (``as-deploy[tflite]``), which pulls the same libraries in. An as-bench
    extra that no as-deploy extra covers (``minilm``) keeps as-bench's hint.
    """
    from as_bench.exceptions import MissingExtraError as BenchMissingExtra

    try:
        yield
    except BenchMissingExtra as exc:
        if exc.extra not in _COVERED_BENCH_EXTRAS:
            raise
        raise MissingExtraError(exc.module, FORMAT_EXTRAS[fmt], f"exporting to {fmt}") from exc
