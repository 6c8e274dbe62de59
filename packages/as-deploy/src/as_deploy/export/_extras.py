"""Which as-deploy extra each export format needs, and the exact hint when it is missing.

Exporting is not part of as-deploy's core install (the server needs none of it): each
format is its own extra, ``export`` (ONNX: as-bench, torch, onnx, onnxscript), ``coreml``
(coremltools) and ``tflite`` (litert-torch, ai-edge-litert). Nothing heavy is imported
here: :func:`check_format` looks the modules up without importing them, and a missing one
raises :class:`~as_deploy.exceptions.MissingExtraError` whose message is the
``uv add "as-deploy[<extra>]"`` command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from as_core import extras as _core_extras
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

#: The modules each format needs, in the order they are checked. as-bench comes first:
#: without it (a server-only install) nothing can be exported at all.
FORMAT_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("as_bench", "torch", "onnx", "onnxscript", "onnxruntime"),
    "coreml": ("as_bench", "torch", "coremltools"),
    "tflite": ("as_bench", "torch", "litert_torch", "ai_edge_litert"),
}

# as-bench extras whose modules every as-deploy format extra also installs: a module of
# theirs that is missing is fixed by the format's as-deploy extra.
_COVERED_BENCH_EXTRAS = frozenset({"torch", "onnx", "coreml", "tflite"})


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (tests replace this)."""
    return _core_extras.is_installed(module)


def feature(fmt: str) -> str:
    """What needs the format's modules, in words (``"exporting to onnx"``)."""
    return f"exporting to {fmt}"


def check_format(fmt: str) -> None:
    """Raise :class:`MissingExtraError` if a module that ``fmt`` needs is not installed.

    Raises:
        MissingExtraError: The message and hint name ``uv add "as-deploy[<extra>]"``.
    """
    for module in FORMAT_MODULES[fmt]:
        if not is_installed(module):
            raise MissingExtraError(module, FORMAT_EXTRAS[fmt], feature(fmt))


def require(module: str, fmt: str) -> ModuleType:
    """Import ``module`` for format ``fmt``, or raise :class:`MissingExtraError`."""
    return _core_extras.require(
        module, FORMAT_EXTRAS[fmt], error=MissingExtraError, feature=feature(fmt)
    )


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
        raise MissingExtraError(exc.module, FORMAT_EXTRAS[fmt], feature(fmt)) from exc
