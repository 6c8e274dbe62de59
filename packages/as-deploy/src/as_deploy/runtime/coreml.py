"""The Core ML runner (macOS only; the ``coreml`` extra: coremltools).

Where the model lives: a manifest lists regular files only, so a Core ML model stored as
an ``.mlpackage`` (a folder) lists the files inside it. The runner loads the nearest
folder above the manifest's ``"model"`` file whose name ends in ``.mlpackage`` or
``.mlmodelc`` (for example ``model.mlpackage/Manifest.json`` loads ``model.mlpackage``);
when there is none, it loads the model file itself (an ``.mlmodel``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from as_deploy.exceptions import RunnerError
from as_deploy.repository import LoadedModel
from as_deploy.runtime._base import Array, RunnerOptions, require

__all__ = ["CoreMLRunner", "coreml_model_path"]

logger = logging.getLogger(__name__)

_PACKAGE_SUFFIXES = (".mlpackage", ".mlmodelc")


def coreml_model_path(model: LoadedModel) -> Path:
    """Return what Core ML loads for ``model`` (see the module docstring)."""
    directory = model.directory
    for parent in (model.model_path, *model.model_path.parents):
        if parent == directory or not parent.is_relative_to(directory):
            break
        if parent.suffix in _PACKAGE_SUFFIXES:
            return parent
    return model.model_path


def _on_macos() -> bool:
    # A function, so that type checkers on Linux do not call the rest unreachable.
    return sys.platform == "darwin"


class CoreMLRunner:
    """Runs Core ML models with coremltools' ``MLModel.predict`` (macOS only).

    Args:
        options: Unused; Core ML picks its own threads and compute units (all of them).
    """

    def __init__(self, options: RunnerOptions | None = None) -> None:
        """Keep the options; nothing loads until :meth:`load`."""
        self.options = options or RunnerOptions()
        self._model: Any = None
        self._inputs: dict[str, str] = {}
        self._outputs: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, model: LoadedModel) -> None:
        """Load the model and pair its feature names with the manifest's.

        Raises:
            MissingRuntimeError: coremltools is not installed.
            RunnerError: Not on macOS, or Core ML refused the model.
        """
        manifest = model.manifest
        where = f"{manifest.name}/{manifest.version}"
        ct = require("coremltools", "coreml", f"the Core ML model {where}")
        if not _on_macos():
            raise RunnerError(f"{where}: Core ML models run on macOS only")
        path = coreml_model_path(model)
        try:
            loaded = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
            description = loaded.get_spec().description
        except Exception as exc:  # coremltools raises assorted types
            raise RunnerError(f"{where}: Core ML could not load {path}: {exc}") from exc
        file_inputs = [feature.name for feature in description.input]
        file_outputs = [feature.name for feature in description.output]
        self._inputs = _pair(where, "inputs", [s.name for s in manifest.inputs], file_inputs)
        self._outputs = _pair(where, "outputs", [s.name for s in manifest.outputs], file_outputs)
        self._model = loaded
        logger.debug("Core ML model %s from %s", where, path)

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one prediction.

        Raises:
            RunnerError: The model is not loaded, or Core ML failed.
        """
        with self._lock:
            loaded = self._model
            if loaded is None:
                raise RunnerError("the Core ML model is not loaded")
            feed = {self._inputs[name]: array for name, array in inputs.items()}
            try:
                results = loaded.predict(feed)
            except Exception as exc:  # coremltools raises assorted types
                raise RunnerError(f"Core ML failed: {exc}") from exc
        return {name: np.asarray(results[key]) for name, key in self._outputs.items()}

    def close(self) -> None:
        """Drop the model."""
        with self._lock:
            self._model = None


def _pair(where: str, kind: str, wanted: list[str], found: list[str]) -> dict[str, str]:
    """Map manifest names to the file's: by name, else by position (same count)."""
    if set(wanted) <= set(found):
        return {name: name for name in wanted}
    if len(wanted) != len(found):
        raise RunnerError(
            f"{where}: the manifest's {kind} {wanted} do not match the model's {found}"
        )
    return dict(zip(wanted, found, strict=True))
