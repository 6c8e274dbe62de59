"""Writing settings as YAML, JSON or TOML, secrets masked unless asked otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from as_config._formats import FORMATS, ConfigFormat, format_for_name, format_for_path, render
from as_core.fs import write_text_atomic

SECRET_MASK = "**********"
"""What a secret looks like in a dump: pydantic's own mask."""


def _reveal(masked: Any, raw: Any) -> Any:
    """Walk the JSON-mode dump and the Python-mode dump together, unmasking secrets.

    The JSON-mode dump is kept for everything else, so paths, enums and dates come out
    exactly as they do masked.
    """
    reveal = getattr(raw, "get_secret_value", None)
    if callable(reveal):
        value = reveal()
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(masked, dict) and isinstance(raw, Mapping):
        return {k: _reveal(v, raw.get(k)) for k, v in masked.items()}
    if isinstance(masked, list) and isinstance(raw, list | tuple | set | frozenset):
        return [_reveal(m, r) for m, r in zip(masked, list(raw), strict=False)]
    return masked


def settings_data(
    settings: BaseModel | Mapping[str, Any], *, reveal_secrets: bool = False
) -> dict[str, Any]:
    """The JSON-compatible mapping a dump writes: secrets masked unless revealed."""
    if not isinstance(settings, BaseModel):
        return dict(settings)
    # JSON mode turns paths, enums and dates into plain values every format can hold, and
    # pydantic writes SecretStr and SecretBytes there as "**********".
    data = settings.model_dump(mode="json")
    if reveal_secrets:
        return cast(dict[str, Any], _reveal(data, settings.model_dump(mode="python")))
    return data


def _file_mode(path: Path, reveal_secrets: bool) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    # A file that holds plain-text secrets is for its owner's eyes only.
    return 0o600 if reveal_secrets else 0o644


def dump_settings(
    settings: BaseModel | Mapping[str, Any],
    target: str | os.PathLike[str],
    *,
    fmt: ConfigFormat | str | None = None,
    reveal_secrets: bool = False,
) -> str:
    """Write settings as YAML, JSON or TOML, to a string or atomically to a file.

    ``target`` is either a format name (``"yaml"``, ``"yml"``, ``"json"``, ``"toml"``): the
    text is returned and nothing is written; or a path: the format comes from its suffix
    (or ``fmt``), the file is replaced atomically (parent directories are created), and
    the text is returned too. Pass a `pathlib.Path` to write a file called ``json``.

    Secrets (``SecretStr``, ``SecretBytes``) are written as ``**********``: a dump is for
    reading and sharing. Such a file does not load back to the same secrets; pass
    ``reveal_secrets=True`` to write the real values (a new file then gets mode 0600).

    TOML has no null: keys whose value is None are left out, so they read back as the
    field's default. A None inside a list cannot be left out and raises
    `ConfigDumpError`.

    Args:
        settings: A settings object (any pydantic model) or a plain mapping.
        target: A format name, or the file to write.
        fmt: The format, when it should not come from ``target``.
        reveal_secrets: Write secret values in plain text.

    Returns:
        The text written.

    Raises:
        UnsupportedFormatError: The format (or suffix) is not yaml, yml, json or toml.
        ConfigDumpError: A value the format cannot hold (NaN in JSON, None in a TOML list).
        OSError: The file cannot be written.
    """
    path: Path | None = None
    if isinstance(target, str) and target.lower().lstrip(".") in (*FORMATS, "yml"):
        chosen = format_for_name(fmt or target)
    else:
        path = Path(target)
        chosen = format_for_name(fmt) if fmt is not None else format_for_path(path)
    text = render(settings_data(settings, reveal_secrets=reveal_secrets), chosen)
    if path is not None:
        write_text_atomic(path, text, _file_mode(path, reveal_secrets))
    return text
