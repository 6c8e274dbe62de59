"""The request and response bodies of the HTTP API, as pydantic models (for OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from as_deploy.manifest import ParityReport, Provenance, TensorSpec

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "Health",
    "ModelInfo",
    "ModelList",
    "ModelSummary",
    "ModelVersionStatus",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "Readiness",
]


class ErrorBody(BaseModel):
    """What went wrong.

    Attributes:
        code: A stable, machine-readable code (``"invalid_shape"``).
        message: What went wrong and where, in words.
        detail: Structured extras (the location, the limit), or ``None``.
    """

    code: str
    message: str
    detail: Any = None


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class Health(BaseModel):
    """``GET /health``: the process is serving."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """``GET /ready``: whether the configured models are loaded.

    Attributes:
        ready: True once every preload model is loaded and the server is not stopping.
        status: ``"ready"``, ``"loading"``, ``"failed"`` (a model of the ``preload`` list
            failed) or ``"shutting_down"``.
        loaded: The loaded versions as ``name/version``.
        pending: Preload models not loaded yet.
        errors: Why preload models failed, by model (with the default preload, where
            every model is preloaded, a failure is listed here but the server is ready).
    """

    ready: bool
    status: Literal["ready", "loading", "failed", "shutting_down"]
    loaded: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)


class ModelVersionStatus(BaseModel):
    """One version of a model and whether it is loaded."""

    version: str
    loaded: bool


class ModelSummary(BaseModel):
    """One model in the repository.

    Attributes:
        name: The model's name.
        latest: The version served when a request names none.
        versions: Every version, oldest first, with whether it is loaded.
    """

    name: str
    latest: str
    versions: list[ModelVersionStatus]


class ModelList(BaseModel):
    """``GET /v1/models``: every model in the repository."""

    models: list[ModelSummary]


class ModelInfo(BaseModel):
    """``GET /v1/models/{name}``: one version's manifest, as clients need it.

    Attributes:
        name: The model's name.
        version: The version described.
        versions: Every version of the model, oldest first.
        loaded: Whether this version is loaded.
        state: ``"loaded"`` (serving now), ``"loading"`` (a load is under way) or
            ``"unloaded"`` (its files are verified; its first predict loads it). A version
            that cannot be served has no state: the request answers 409 with the reason,
            as a predict would.
        format: The model's format (``"onnx"``, ``"tflite"``, ``"coreml"``).
        inputs: The inputs a predict request must send (``None`` marks a dynamic dimension).
        outputs: The outputs a predict response holds.
        labels: Class labels in output order, if any.
        preprocessing: How to prepare inputs.
        parity: The export's parity report, if one was run.
        provenance: Where the model came from.
    """

    name: str
    version: str
    versions: list[str]
    loaded: bool
    state: Literal["loaded", "loading", "unloaded"]
    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = None
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    parity: ParityReport | None = None
    provenance: Provenance | None = None


class PredictRequest(BaseModel):
    """``POST /v1/models/{name}/predict``: the inputs, by the manifest's input names.

    Each input is a nested list whose shape matches the manifest's (dynamic dimensions
    take any size from 1; the first is the batch), holding numbers for float inputs,
    integers for integer inputs, booleans for bool inputs.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": {"input": [[[[0.0] * 8 for _ in range(8)]]]}}],
        }
    )

    inputs: dict[str, list[Any]] = Field(
        description="Each input's values as a nested list, keyed by the input's name."
    )


class Prediction(BaseModel):
    """The top class of one batch row.

    Attributes:
        index: The top class's index in the output.
        label: Its label.
        score: Its softmax probability.
    """

    index: int
    label: str
    score: float


class PredictResponse(BaseModel):
    """The outputs of one prediction.

    Attributes:
        model: The model's name.
        version: The version that ran.
        outputs: Each output as a nested list, keyed by the output's name.
        predictions: One top class per batch row; only for models with labels and one
            2-D output of class scores.
    """

    model: str
    version: str
    outputs: dict[str, list[Any]]
    predictions: list[Prediction] | None = None
