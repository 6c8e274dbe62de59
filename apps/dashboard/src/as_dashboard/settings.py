"""The dashboard's settings: a config file, ``AS_DASHBOARD__...`` variables, arguments.

Every address the dashboard listens on or reads from is a setting, so that the same
image runs on a laptop, in a container and behind a model server::

    AS_DASHBOARD__PORT=8601 AS_DASHBOARD__SERVER_URL=http://model-server:8000 dashboard
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings, load_settings

__all__ = ["DashboardSettings", "load_dashboard_settings"]


class DashboardSettings(AsSettings):
    """What the dashboard serves on, and what it opens when a page first loads.

    Attributes:
        host: The address Streamlit listens on (``0.0.0.0`` in a container).
        port: The port Streamlit listens on.
        stores: as-bench result stores (folders) or exports (``.json``, ``.csv``,
            ``.parquet``) opened on the benchmark pages; more can be typed in the page.
        server_url: Base URL of an as-deploy server whose ``/metrics`` the live page reads
            (``http://127.0.0.1:8000``); ``None`` until one is typed in the page.
        training_dirs: Training runs (folders with the monitor's ``metrics.jsonl``) or
            folders that hold such runs.
        studies: Optuna storages of ``as-optimize run --search optuna``: a ``study.db``
            file, the run's output folder, or a database URL.
        refresh_s: Seconds between two refreshes of the live parts of a page.
        metrics_timeout_s: How long one read of ``/metrics`` may take.
        history: Readings of ``/metrics`` kept for the live charts.
        figures_dir: Where the as-bench figures are drawn (a temporary folder when unset).
        log_level: The console's log level.
        log_dir: A folder for the JSON-lines log file; none when unset.
    """

    model_config = SettingsConfigDict(env_prefix="AS_DASHBOARD__")

    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    stores: list[Path] = Field(default_factory=list)
    server_url: str | None = None
    training_dirs: list[Path] = Field(default_factory=list)
    studies: list[str] = Field(default_factory=list)
    refresh_s: float = Field(default=2.0, gt=0, le=3600)
    metrics_timeout_s: float = Field(default=2.0, gt=0, le=60)
    history: int = Field(default=300, ge=2, le=100_000)
    figures_dir: Path | None = None
    log_level: str = "info"
    log_dir: Path | None = None

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"server_url must start with http:// or https://, not {value!r}")
        return value


def load_dashboard_settings(
    config: Path | None = None, overrides: dict[str, object] | None = None
) -> DashboardSettings:
    """The settings from ``config`` (YAML, JSON or TOML), the environment and ``overrides``.

    Raises:
        as_config.AsConfigError: The file cannot be read, or a value is invalid (the
            message names the file, the key and the line).
    """
    return load_settings(DashboardSettings, config, overrides=overrides or {})
