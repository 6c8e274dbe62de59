"""What the torch-backed devices (CUDA, MPS) share: finding torch without importing it."""

from __future__ import annotations

import sys
from types import ModuleType

from as_bench.exceptions import MissingExtraError
from as_core import install_hint
from as_core.extras import is_installed, require

__all__ = ["TORCH_MISSING", "load_torch", "torch_if_installed"]

TORCH_MISSING = (
    'torch is not installed (it comes with the "torch" extra: '
    f"{install_hint(MissingExtraError.package, 'torch')})"
)


def torch_if_installed() -> ModuleType | None:
    """The torch module, imported now if it is installed, else ``None`` (no import tried)."""
    module = sys.modules.get("torch")
    if module is not None:
        return module
    if not is_installed("torch"):
        return None
    return load_torch()


def load_torch() -> ModuleType:
    """Import torch or raise :class:`~as_bench.exceptions.MissingExtraError`."""
    return require("torch", "torch", error=MissingExtraError)
