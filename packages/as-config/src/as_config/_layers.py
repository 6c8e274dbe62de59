"""File layers: the config file, then the chosen profile on top, deep-merged."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from as_config._parsed import KeyPath, Position
from as_config._reader import ConfigDocument, check_string_keys, read_document
from as_config.exceptions import ConfigParseError, ProfileNotFoundError

PROFILES_KEY = "profiles"
"""Top-level key holding named overlays; reserved, never passed to the model."""

# A profile name becomes part of a file name, so it must not carry a path.
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new mapping: ``overlay`` on top of ``base``, nested mappings merged.

    Where both sides hold a mapping under the same key, the two are merged key by key;
    anything else in ``overlay`` (a scalar, a list, None) replaces what ``base`` had.
    Neither argument is changed.

    Args:
        base: The lower layer.
        overlay: The higher layer.

    Returns:
        The merged mapping.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Layer:
    """Settings data from one file, or from one profile section of a file.

    Attributes:
        data: The settings mapping of this layer.
        path: The file it came from.
        positions: Key positions in that file.
        prefix: Where ``data`` sits in the file: ``("profiles", "dev")`` for a section.
        profile: The profile this layer belongs to, if any.
    """

    data: dict[str, Any]
    path: Path
    positions: dict[KeyPath, Position] = field(default_factory=dict)
    prefix: KeyPath = ()
    profile: str | None = None

    def position(self, key: KeyPath) -> Position | None:
        """Where ``key`` (or its nearest parent the file records) is, if known."""
        for end in range(len(key), 0, -1):
            found = self.positions.get((*self.prefix, *key[:end]))
            if found is not None:
                return found
        return None


def _sections(document: ConfigDocument) -> Mapping[str, Any]:
    sections = document.data.get(PROFILES_KEY, {})
    if not isinstance(sections, Mapping):
        line, column = document.positions.get((PROFILES_KEY,), (None, None))
        raise ConfigParseError(
            document.path,
            f"'{PROFILES_KEY}' must be a mapping of profile names to settings",
            line=line,
            column=column,
        )
    return sections


def _profile_layers(document: ConfigDocument, profile: str) -> list[Layer]:
    if not _PROFILE_NAME.match(profile):
        raise ProfileNotFoundError(
            profile, "a profile name holds letters, digits, '-' and '_' only"
        )
    sections = _sections(document)
    layers: list[Layer] = []
    if profile in sections:
        section = sections[profile]
        if not isinstance(section, Mapping):
            line, column = document.positions.get((PROFILES_KEY, profile), (None, None))
            raise ConfigParseError(
                document.path,
                f"profile '{PROFILES_KEY}.{profile}' must be a mapping of settings",
                line=line,
                column=column,
            )
        check_string_keys(dict(section), document.path, document.positions, (PROFILES_KEY, profile))
        layers.append(
            Layer(
                dict(section),
                document.path,
                document.positions,
                prefix=(PROFILES_KEY, profile),
                profile=profile,
            )
        )
    path = document.path
    sibling = path.with_name(f"{path.stem}.{profile}{path.suffix}")
    if sibling.is_file():
        overlay = read_document(sibling)
        layers.append(Layer(overlay.data, sibling, overlay.positions, profile=profile))
    if not layers:
        raise ProfileNotFoundError(
            profile,
            f"no '{PROFILES_KEY}.{profile}' section in {path} and no file {sibling}",
            available=sorted(str(name) for name in sections),
        )
    return layers


def file_layers(path: Path | None, profile: str | None) -> list[Layer]:
    """Read the config file and the profile overlays, lowest precedence first.

    The layers are: the file without its ``profiles`` key; then, with a profile, the
    file's ``profiles.<profile>`` section; then the sibling file ``<stem>.<profile><suffix>``
    (``settings.dev.yaml`` next to ``settings.yaml``). At least one of the two profile
    sources must exist.

    Raises:
        ProfileNotFoundError: The profile is in neither place, or there is no file.
    """
    if path is None:
        if profile is not None:
            raise ProfileNotFoundError(profile, "no config file was given to take it from")
        return []
    document = read_document(path)
    base = {key: value for key, value in document.data.items() if key != PROFILES_KEY}
    # Check the section's shape even when no profile is chosen: a broken section is a
    # mistake that should not wait for the day someone selects it.
    _sections(document)
    layers = [Layer(base, path, document.positions)]
    if profile is not None:
        layers += _profile_layers(document, profile)
    return layers


def merge_layers(layers: list[Layer]) -> dict[str, Any]:
    """Deep-merge layers, later ones on top."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    return merged
