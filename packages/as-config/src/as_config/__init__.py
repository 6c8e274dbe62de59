"""Validated settings for as-toolkit from YAML, JSON, TOML and environment variables.

Define settings as a subclass of `AsSettings`, then build them with `load_settings`:

    from as_config import AsSettings, ConfigSection, load_settings
    from pydantic_settings import SettingsConfigDict

    class Store(ConfigSection):
        results_dir: str = "results"

    class BenchSettings(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_BENCH__")
        repeats: int = 10
        store: Store = Store()

    settings = load_settings(BenchSettings, "bench.yaml", profile="ci")

Precedence, highest first: arguments, environment, profile, file, defaults.
"""

# write_text_atomic lives in as-core, the shared base; it stays importable from here.
from as_config._dump import SECRET_MASK, dump_settings
from as_config._formats import SUFFIXES, ConfigFormat
from as_config._layers import PROFILES_KEY, deep_merge
from as_config._loader import load_settings
from as_config._reader import read_config_file
from as_config._settings import AsSettings, ConfigSection
from as_config._version import __version__
from as_config.exceptions import (
    AsConfigError,
    ConfigDumpError,
    ConfigFileNotFoundError,
    ConfigFileReadError,
    ConfigIssue,
    ConfigParseError,
    ConfigValidationError,
    DuplicateKeyError,
    ProfileNotFoundError,
    UnsupportedFormatError,
)
from as_core.fs import write_text_atomic

__all__ = [
    "PROFILES_KEY",
    "SECRET_MASK",
    "SUFFIXES",
    "AsConfigError",
    "AsSettings",
    "ConfigDumpError",
    "ConfigFileNotFoundError",
    "ConfigFileReadError",
    "ConfigFormat",
    "ConfigIssue",
    "ConfigParseError",
    "ConfigSection",
    "ConfigValidationError",
    "DuplicateKeyError",
    "ProfileNotFoundError",
    "UnsupportedFormatError",
    "__version__",
    "deep_merge",
    "dump_settings",
    "load_settings",
    "read_config_file",
    "write_text_atomic",
]
