"""Settings of the demo: :class:`DemoSettings`, through as-config.

Every value can be set in a YAML/JSON/TOML file (``demo --config demo.yaml``), in the
environment with the prefix ``AS_DEMO__`` (``AS_DEMO__SERVER_URL=http://models:8000``), or
by the command line's options, which win over both::

    server_url: http://127.0.0.1:8000   # answers from this as-deploy server
    repo: models                        # or from this repository, in process
    host: 127.0.0.1
    port: 7860
    digits_model: digits-cnn
    minilm_model: minilm
    latency_window: 100
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings

__all__ = ["DemoSettings"]


class DemoSettings(AsSettings):
    """Everything the demo can be told.

    Attributes:
        server_url: An as-deploy server (``http://host:port``) that answers every request;
            ``None`` runs the models in this process from ``repo``.
        repo: The model repository the models run from when there is no ``server_url``;
            ``None`` is the default model that as-deploy ships (the digits CNN).
        host: The interface the demo listens on (``0.0.0.0`` in a container).
        port: The demo's TCP port.
        log_level: Level of the demo's logs.
        log_dir: Also write JSON-lines logs here.
        digits_model: The repository's name of the digits classifier.
        minilm_model: The repository's name of the exported MiniLM (``as-deploy export
            minilm``); the sentence tab says so when there is none.
        latency_window: How many of a version's latest requests its p50 and p99 cover.
        request_timeout_s: How long a request to the server may take.
    """

    model_config = SettingsConfigDict(env_prefix="AS_DEMO__")

    server_url: str | None = None
    repo: Path | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 7860
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_dir: Path | None = None
    digits_model: str = "digits-cnn"
    minilm_model: str = "minilm"
    latency_window: Annotated[int, Field(ge=2, le=100_000)] = 100
    request_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server_url must start with http:// or https://, got {value!r}")
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
