"""The settings base classes and the source that feeds file data to pydantic-settings."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# The file layer for the settings class being built right now. A context variable, not a
# class attribute, so that threads and tasks loading settings at once do not see each
# other's files; it holds the class too, so a nested settings object built from defaults
# during validation does not receive the outer file's data.
_FILE_LAYER: ContextVar[tuple[type[BaseSettings], Mapping[str, Any]] | None] = ContextVar(
    "as_config_file_layer", default=None
)


@contextmanager
def file_layer(settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> Iterator[None]:
    """Make ``data`` the file layer while ``settings_cls`` is built inside the block."""
    token = _FILE_LAYER.set((settings_cls, data))
    try:
        yield
    finally:
        _FILE_LAYER.reset(token)


class FileLayerSource(PydanticBaseSettingsSource):
    """Settings source holding the merged config file and profile data.

    It sits below the environment and above the defaults. `load_settings` fills it;
    constructing a settings class directly leaves it empty.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` returns the whole layer at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return a copy of the file layer for this settings class, or nothing."""
        current = _FILE_LAYER.get()
        if current is None or current[0] is not self.settings_cls:
            return {}
        return copy.deepcopy(dict(current[1]))


class AsSettings(BaseSettings):
    """Base class for settings read from a file, a profile, the environment and arguments.

    Precedence, highest first: arguments (``overrides``), environment variables, a
    ``.env`` file if the subclass sets ``env_file``, the profile, the config file,
    files in ``secrets_dir`` if set, the field defaults.

    Defaults a subclass may change in its own ``model_config``:

    * ``extra="forbid"``: an unknown key is an error, not silently ignored.
    * ``env_prefix="AS_"``: set your own, ending in ``__``, e.g. ``"AS_BENCH__"``. Never
      leave it empty, or variables like ``USER`` and ``PATH`` would set fields of those
      names.
    * ``env_nested_delimiter="__"``: ``AS_BENCH__STORE__RESULTS_DIR`` sets
      ``store.results_dir``. Only the double underscore nests; single underscores belong
      to the key.
    * ``case_sensitive=False``: environment variable names match in any case.

    Example:
        >>> class StoreSettings(ConfigSection):
        ...     results_dir: str = "results"
        >>> class BenchSettings(AsSettings):
        ...     model_config = SettingsConfigDict(env_prefix="AS_BENCH__")
        ...     repeats: int = 10
        ...     store: StoreSettings = StoreSettings()
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix="AS_",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Put the config file layer between the environment and the secrets directory."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            FileLayerSource(settings_cls),
            file_secret_settings,
        )


class ConfigSection(BaseModel):
    """Base class for nested sections of `AsSettings`: unknown keys are errors.

    pydantic models ignore unknown keys by default, and a settings model's ``extra``
    does not reach the models nested in it, so a misspelt nested key would silently do
    nothing. Subclass this (or set ``extra="forbid"`` yourself) for nested sections.
    """

    model_config = ConfigDict(extra="forbid")
