"""The ONNX Runtime runner, the server's default."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from as_core.runtime import onnxruntime_session
from as_deploy._onnx_data import check_external_data
from as_deploy.exceptions import RunnerError
from as_deploy.repository import LoadedModel
from as_deploy.runtime._base import Array, RunnerOptions, check_names

__all__ = ["OnnxRunner"]

logger = logging.getLogger(__name__)


class OnnxRunner:
    """Runs ``.onnx`` models in an ONNX Runtime ``InferenceSession``.

    ``InferenceSession.run`` is thread-safe, so one session serves every worker thread.

    Args:
        options: Thread counts, spinning and execution providers; the session is opened
            by :func:`as_core.runtime.onnxruntime_session` with them.
    """

    def __init__(self, options: RunnerOptions | None = None) -> None:
        """Keep the options; nothing loads until :meth:`load`."""
        self.options = options or RunnerOptions()
        self._session: Any = None
        self._outputs: list[str] = []

    def load(self, model: LoadedModel) -> None:
        """Create the session; external weights load from beside the model file.

        Before ONNX Runtime opens it, the file's external-data references are read (not
        its weights): each must be a file of the manifest, so verified.

        Raises:
            IntegrityError: The model reads a file the manifest does not list, or is not
                an ONNX protobuf file.
            UnsafePathError: The model reads a file outside its version folder.
            RunnerError: ONNX Runtime refused the file, or its inputs and outputs are not
                the manifest's.
        """
        manifest = model.manifest
        check_external_data(model)
        try:
            session = onnxruntime_session(model.model_path, self.options)
        except Exception as exc:  # ORT raises its own unrelated exception types
            raise RunnerError(
                f"{manifest.name}/{manifest.version}: ONNX Runtime could not load "
                f"{model.model_path}: {exc}"
            ) from exc
        check_names(
            model,
            "inputs",
            [spec.name for spec in manifest.inputs],
            [node.name for node in session.get_inputs()],
        )
        check_names(
            model,
            "outputs",
            [spec.name for spec in manifest.outputs],
            [node.name for node in session.get_outputs()],
        )
        self._outputs = [spec.name for spec in manifest.outputs]
        self._session = session
        logger.debug(
            "onnxruntime session for %s/%s: %s",
            manifest.name,
            manifest.version,
            self.options.describe(),
        )

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one inference.

        Raises:
            RunnerError: The model is not loaded, or ONNX Runtime failed.
        """
        session = self._session
        if session is None:
            raise RunnerError("the ONNX model is not loaded")
        try:
            results = session.run(self._outputs, dict(inputs))
        except Exception as exc:  # ORT's own exception types
            raise RunnerError(f"ONNX Runtime failed: {exc}") from exc
        return dict(zip(self._outputs, results, strict=True))

    def close(self) -> None:
        """Drop the session."""
        self._session = None
