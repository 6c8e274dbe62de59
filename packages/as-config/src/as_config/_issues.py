"""Turning pydantic's validation errors into issues that say where each value came from."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from as_config._layers import Layer
from as_config._parsed import KeyPath, dotted
from as_config.exceptions import ConfigIssue

_SETTINGS_ERROR_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


@dataclass(frozen=True)
class Sources:
    """Everything that fed one settings object, for finding where a value came from.

    Attributes:
        model: The settings class.
        layers: File layers, lowest precedence first.
        overrides: The arguments passed to `load_settings`.
        env_prefix: The environment variable prefix in effect.
        env_delimiter: The nested delimiter, or None if the model does not nest.
        case_sensitive: Whether environment variable names match case-sensitively.
    """

    model: type[BaseSettings]
    layers: Sequence[Layer]
    overrides: Mapping[str, Any]
    env_prefix: str
    env_delimiter: str | None
    case_sensitive: bool

    def env_var(self, key: KeyPath) -> str | None:
        """The environment variable that set ``key`` or one of its parents, if any."""
        names = {name if self.case_sensitive else name.upper(): name for name in os.environ}
        parts: list[str] = []
        for part in key:
            if not isinstance(part, str):
                break
            parts.append(part)
        if self.env_delimiter is None:
            parts = parts[:1]
        # The longest name first: AS_BENCH__STORE__RESULTS_DIR beats AS_BENCH__STORE.
        for end in range(len(parts), 0, -1):
            candidate = self.env_prefix + (self.env_delimiter or "").join(parts[:end])
            found = names.get(candidate if self.case_sensitive else candidate.upper())
            if found is not None:
                return found
        return None


def _contains(data: Any, key: KeyPath) -> bool:
    for part in key:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


def _from_layers(key: KeyPath, sources: Sources, reason: str) -> ConfigIssue:
    for layer in reversed(sources.layers):
        if not _contains(layer.data, key):
            continue
        place = str(layer.path)
        line = column = None
        found = layer.position(key)
        if found is not None:
            line, column = found
            place += f":{line}:{column}"
        if layer.profile is not None:
            place += f" (profile {layer.profile!r})"
        return ConfigIssue(dotted(key), reason, place, layer.path, line, column)
    return ConfigIssue(dotted(key), reason)


def locate(key: KeyPath, reason: str, sources: Sources) -> ConfigIssue:
    """Build the issue for ``key``, naming the highest layer that holds a value for it."""
    if _contains(sources.overrides, key):
        return ConfigIssue(dotted(key), reason, "argument")
    env_var = sources.env_var(key)
    if env_var is not None:
        return ConfigIssue(dotted(key), reason, f"environment variable {env_var}", env_var=env_var)
    # pydantic may add parts to the location (a union member's type); the value itself
    # sits at the longest prefix some layer holds.
    for end in range(len(key), 0, -1):
        issue = _from_layers(key[:end], sources, reason)
        if issue.source is not None:
            return ConfigIssue(
                dotted(key), reason, issue.source, issue.path, issue.line, issue.column
            )
    return ConfigIssue(dotted(key), reason)


def _field_names(model: type[BaseModel], parent: KeyPath) -> list[str]:
    """Field names of the model at ``parent``, for spelling suggestions; best effort."""
    current: Any = model
    for part in parent:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _env_name(key: KeyPath, sources: Sources) -> str:
    parts = [str(part) for part in key]
    if sources.env_delimiter is None:
        parts = parts[:1]
    name = sources.env_prefix + (sources.env_delimiter or "").join(parts)
    return name if sources.case_sensitive else name.upper()


def _reason(error: Mapping[str, Any], key: KeyPath, sources: Sources) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
        names = _field_names(sources.model, key[:-1])
        close = difflib.get_close_matches(str(key[-1]), names, n=1) if key else []
        if close:
            reason += f"; did you mean {close[0]!r}?"
        return reason
    if kind == "missing":
        return (
            "required, but not set; set it in the config file or in the environment "
            f"variable {_env_name(key, sources)}"
        )
    return str(error["msg"])


def issues_from_validation(exc: ValidationError, sources: Sources) -> list[ConfigIssue]:
    """One issue per pydantic error, each with the file or variable its value came from."""
    issues = []
    for error in exc.errors(include_url=False):
        key: KeyPath = tuple(error["loc"])
        reason = _reason(error, key, sources)
        if error["type"] == "missing":
            issues.append(ConfigIssue(dotted(key), reason))
        else:
            issues.append(locate(key, reason, sources))
    return issues


def issues_from_settings_error(exc: Exception, sources: Sources) -> list[ConfigIssue]:
    """The issue for a value pydantic-settings could not decode (bad JSON in a variable)."""
    match = _SETTINGS_ERROR_FIELD.search(str(exc))
    field = match.group("field") if match else ""
    reason = (
        "cannot decode the value; a list or mapping field takes JSON from an "
        'environment variable, e.g. ["a", "b"] or {"key": 1}'
    )
    return [locate((field,) if field else (), reason, sources)]
