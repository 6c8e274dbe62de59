"""The ONNX Runtime runner, the server's default."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from as_deploy.repository import LoadedModel
from as_deploy.runtime._base import Array, RunnerOptions, check_names
from as_deploy.runtime.errors import RunnerError

__all__ = ["OnnxRunner"]

logger = logging.getLogger(__name__)


class OnnxRunner:
    """Runs ``.onnx`` models in an ONNX Runtime ``InferenceSession``.

    ``InferenceSession.run`` is thread-safe, so one session serves every worker thread.

    Args:
        options: Thread counts and execution providers.
    """

    def __init__(self, options: RunnerOptions | None = None) -> None:
        """Keep the options; nothing loads until :meth:`load`."""
        self.options = options or RunnerOptions()
        self._session: Any = None
        self._outputs: list[str] = []

    def load(self, model: LoadedModel) -> None:
        """Create the session; external weights load from beside the model file.

        Raises:
            RunnerError: ONNX Runtime refused the file, or its inputs and outputs are not
                the manifest's.
        """
        ort: Any = importlib.import_module("onnxruntime")  # untyped: no stubs ship

        options = ort.SessionOptions()
        if self.options.intra_op_threads is not None:
            options.intra_op_num_threads = self.options.intra_op_threads
        if self.options.inter_op_threads is not None:
            options.inter_op_num_threads = self.options.inter_op_threads
        # Spinning threads answer the next call a little sooner, but in a server they burn
        # the cores the event loop needs to parse requests between inferences.
        spin = "1" if self.options.spin_wait else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        providers = list(self.options.providers or ["CPUExecutionProvider"])
        manifest = model.manifest
        try:
            session = ort.InferenceSession(
                str(model.model_path), sess_options=options, providers=providers
            )
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
            "onnxruntime session for %s/%s on %s", manifest.name, manifest.version, providers
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
