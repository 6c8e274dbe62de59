"""`load_settings`: files, profile, environment and arguments into one validated object."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from as_config._issues import Sources, issues_from_settings_error, issues_from_validation
from as_config._layers import file_layers, merge_layers
from as_config._settings import AsSettings, file_layer
from as_config.exceptions import ConfigValidationError

logger = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=AsSettings)


def load_settings(
    model: type[SettingsT],
    path: str | os.PathLike[str] | None = None,
    *,
    profile: str | None = None,
    env_prefix: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SettingsT:
    """Build validated settings from a config file, a profile, the environment and arguments.

    Precedence, highest first:

    1. ``overrides`` (arguments),
    2. environment variables ``<env_prefix><KEY>``, nested with ``__``,
    3. the profile: the file's ``profiles.<profile>`` section, then the sibling file
       ``<stem>.<profile><suffix>`` on top of it,
    4. the config file (without its ``profiles`` key),
    5. the field defaults.

    Nested mappings merge key by key across layers, so an environment variable or a
    profile can change ``store.results_dir`` and keep the rest of ``store`` from the file.

    Overrides are a mapping, not keyword arguments, because settings models often have
    fields called ``path`` or ``profile``.

    Args:
        model: The settings class, a subclass of `AsSettings`.
        path: The YAML, JSON or TOML config file; None for environment and defaults only.
        profile: The profile to lay over the file.
        env_prefix: Replaces the model's ``env_prefix`` for this call.
        overrides: Values that win over every other layer; nested mappings merge.

    Returns:
        The validated settings.

    Raises:
        TypeError: ``model`` is not a subclass of `AsSettings`.
        ConfigFileNotFoundError: The file does not exist.
        ConfigFileReadError: The path is a directory or cannot be read.
        UnsupportedFormatError: The suffix is not .yaml, .yml, .json or .toml.
        ConfigParseError: The file (or the profile file) is malformed; the message has
            the line and column. `DuplicateKeyError` is a subclass.
        ProfileNotFoundError: ``profile`` is in neither the section nor a sibling file.
        ConfigValidationError: The model rejected values; each issue names the key, the
            reason and the file (with line, for YAML and JSON) or environment variable.
    """
    if not (isinstance(model, type) and issubclass(model, AsSettings)):
        raise TypeError(f"model must be a subclass of as_config.AsSettings, got {model!r}")
    layers = file_layers(Path(path) if path is not None else None, profile)
    file_data = merge_layers(layers)
    init: dict[str, Any] = dict(overrides or {})
    if env_prefix is not None:
        init["_env_prefix"] = env_prefix
    config = model.model_config
    sources = Sources(
        model=model,
        layers=layers,
        overrides=overrides or {},
        env_prefix=env_prefix if env_prefix is not None else config.get("env_prefix") or "",
        env_delimiter=config.get("env_nested_delimiter") or None,
        case_sensitive=bool(config.get("case_sensitive", False)),
    )
    logger.debug(
        "loading %s from %s (profile %s)", model.__name__, path or "no file", profile or "none"
    )
    try:
        with file_layer(model, file_data):
            return model(**init)
    except ValidationError as exc:
        # ``from None``: pydantic's error shows the rejected input values, and a logged
        # traceback must not carry a secret that failed validation. The issues hold the
        # keys and reasons.
        raise ConfigValidationError(model.__name__, issues_from_validation(exc, sources)) from None
    except SettingsError as exc:
        raise ConfigValidationError(
            model.__name__, issues_from_settings_error(exc, sources)
        ) from None
