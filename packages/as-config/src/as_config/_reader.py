"""Reading one config file: the file system, the encoding, the format, the shape."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from as_config._formats import format_for_path, parse_text
from as_config._parsed import KeyPath, Position
from as_config.exceptions import ConfigFileNotFoundError, ConfigFileReadError, ConfigParseError

# Checked before UTF-8 so the message says what the file is; UTF-32-LE starts with the
# UTF-16-LE mark, so it comes first.
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass(frozen=True)
class ConfigDocument:
    """A config file read into a mapping.

    Attributes:
        path: The file, as the caller named it.
        data: The top-level mapping ({} for an empty file).
        positions: 1-based (line, column) of each key path, for formats that tell us.
    """

    path: Path
    data: dict[str, Any]
    positions: dict[KeyPath, Position] = field(default_factory=dict)


def _decode(raw: bytes, path: Path) -> str:
    for bom, encoding in _FOREIGN_BOMS:
        if raw.startswith(bom):
            raise ConfigParseError(
                path, f"the file is encoded as {encoding}; save it as UTF-8", line=1, column=1
            )
    # Decision: a UTF-8 byte order mark is accepted and dropped. Windows editors add it,
    # it means nothing in UTF-8, and JSON and TOML parsers would otherwise reject the file.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise ConfigParseError(
            path,
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            line=line,
            column=column,
        ) from exc


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def check_string_keys(
    data: dict[Any, Any], path: Path, positions: dict[KeyPath, Position], prefix: KeyPath = ()
) -> None:
    """Refuse keys that are not strings where they must name settings fields.

    YAML reads ``1:`` or ``null:`` as a number or None; as a field name that can only be
    a mistake, and pydantic would fail on it with a message that names no file.

    Raises:
        ConfigParseError: A key is not a string.
    """
    for key in data:
        if not isinstance(key, str):
            # YAML records the key as written (``null``), so fall back to the parent's line.
            found = positions.get((*prefix, str(key))) or positions.get(prefix)
            line, column = found or (None, None)
            shown = "null" if key is None else repr(key)
            raise ConfigParseError(
                path,
                f"key {shown} is {_describe(key)}, not a string; quote it",
                line=line,
                column=column,
            )


def read_document(path: Path) -> ConfigDocument:
    """Read and parse one config file; see `read_config_file` for the errors."""
    if not path.exists():
        raise ConfigFileNotFoundError(path)
    if path.is_dir():
        raise ConfigFileReadError(path, "it is a directory, not a file")
    fmt = format_for_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        # Removed between the check and the read.
        raise ConfigFileNotFoundError(path) from None
    except OSError as exc:
        raise ConfigFileReadError(path, exc.strerror or str(exc)) from exc
    text = _decode(raw, path)
    if not text.strip():
        # Whitespace only, tabs included (which YAML would reject): an empty config.
        return ConfigDocument(path, {})
    parsed = parse_text(text, fmt, path)
    data = parsed.data
    if data is None and (fmt != "json" or parsed.start is None):
        # Empty, whitespace or comments only: an empty config, not an error.
        return ConfigDocument(path, {})
    if not isinstance(data, dict):
        line, column = parsed.start or (None, None)
        raise ConfigParseError(
            path,
            f"the top level must be a mapping of keys to values, found {_describe(data)}",
            line=line,
            column=column,
        )
    check_string_keys(data, path, parsed.positions)
    return ConfigDocument(path, data, parsed.positions)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML, JSON or TOML file into a mapping, as written (no profiles applied).

    The format comes from the suffix: ``.yaml``/``.yml``, ``.json`` or ``.toml`` (any case).
    An empty file, or one with only whitespace or comments, gives ``{}``. A UTF-8 byte
    order mark is ignored.

    Args:
        path: The file.

    Returns:
        The top-level mapping, including any ``profiles`` section.

    Raises:
        ConfigFileNotFoundError: The file does not exist.
        ConfigFileReadError: The path is a directory or cannot be read.
        UnsupportedFormatError: The suffix is not a supported one.
        DuplicateKeyError: A mapping repeats a key (with line and column).
        ConfigParseError: Bad syntax, not UTF-8, or the top level is not a mapping.
    """
    return read_document(Path(path)).data
