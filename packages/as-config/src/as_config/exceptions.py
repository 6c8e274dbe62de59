"""Errors raised by as-config.

Every error derives from `AsConfigError`, and each subclass also derives from the built-in
exception a caller would catch without knowing this package, so ``except FileNotFoundError``
and ``except ValueError`` keep working::

    AsConfigError (Exception)
    ├── ConfigFileNotFoundError (+ FileNotFoundError)  the config file does not exist
    ├── ConfigFileReadError (+ OSError)                a directory, no permission, I/O failure
    ├── UnsupportedFormatError (+ ValueError)          a suffix other than .yaml/.yml/.json/.toml
    ├── ConfigParseError (+ ValueError)                bad syntax, bad encoding, not a mapping
    │   └── DuplicateKeyError                          the same key twice in one mapping
    ├── ConfigValidationError (+ ValueError)           values the settings model rejects
    ├── ProfileNotFoundError (+ LookupError)           a profile that neither section nor file has
    └── ConfigDumpError (+ ValueError)                 settings a format cannot hold

Messages name the file and, where the format tells us, the line and column as
``path:line:column`` so that editors and terminals can jump to the spot. Each class has a
``hint`` that command-line tools print under the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AsConfigError",
    "ConfigDumpError",
    "ConfigFileNotFoundError",
    "ConfigFileReadError",
    "ConfigIssue",
    "ConfigParseError",
    "ConfigValidationError",
    "DuplicateKeyError",
    "ProfileNotFoundError",
    "UnsupportedFormatError",
]


def _location(path: Path | None, line: int | None, column: int | None) -> str:
    """Format ``path:line:column``, leaving out the parts that are unknown."""
    text = str(path) if path is not None else "<config>"
    if line is not None:
        text += f":{line}"
        if column is not None:
            text += f":{column}"
    return text


def _restore(cls: type[AsConfigError], args: tuple[object, ...], state: dict[str, Any]) -> Any:
    """Rebuild a pickled error without calling its ``__init__`` (whose signature differs)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class AsConfigError(Exception):
    """Base class of every error raised by as-config."""

    hint: str | None = None
    """One line telling the person what to do next; CLIs print it under the message."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by state, so errors cross process boundaries (worker pools) intact."""
        return _restore, (type(self), self.args, self.__dict__)


class ConfigFileNotFoundError(AsConfigError, FileNotFoundError):
    """The config file does not exist.

    Attributes:
        path: The path as the caller gave it.
    """

    hint = "check the path, or create the file (an empty file is a valid, empty config)"

    def __init__(self, path: Path) -> None:
        """Create the error for ``path``."""
        self.path = path
        message = f"config file not found: {path}"
        if not path.is_absolute():
            # A relative path is resolved against the working directory, which is often the
            # surprise; say which directory that was.
            message += f" (looked for {Path.cwd() / path})"
        super().__init__(message)


class ConfigFileReadError(AsConfigError, OSError):
    """The config path exists but cannot be read as a file (a directory, no permission).

    Attributes:
        path: The path as the caller gave it.
        reason: Why it could not be read.
    """

    hint = "pass the path of a .yaml, .yml, .json or .toml file that you can read"

    def __init__(self, path: Path, reason: str) -> None:
        """Create the error for ``path`` with the ``reason`` it could not be read."""
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read config file {path}: {reason}")


class UnsupportedFormatError(AsConfigError, ValueError):
    """The file suffix or format name is not one as-config reads or writes.

    Attributes:
        path: The offending path, when the format came from a path.
        name: The offending suffix or format name.
        supported: The suffixes (or format names) that are supported.
    """

    hint = "rename the file or pass a format explicitly"

    def __init__(self, name: str, supported: Sequence[str], path: Path | None = None) -> None:
        """Create the error for suffix or format ``name``."""
        self.path = path
        self.name = name
        self.supported = tuple(supported)
        where = f"{path}: " if path is not None else ""
        what = f"unsupported config format {name!r}" if name else "no suffix to tell the format"
        super().__init__(f"{where}{what}; supported: {', '.join(self.supported)}")


class ConfigParseError(AsConfigError, ValueError):
    """The file cannot be parsed: bad syntax, not UTF-8, or not a mapping at the top.

    Attributes:
        path: The file.
        line: 1-based line of the problem, when known.
        column: 1-based column of the problem, when known.
        reason: The problem without the location.
    """

    hint = "fix the file at the line and column shown"

    def __init__(
        self,
        path: Path | None,
        reason: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        """Create the error for ``path`` at ``line``/``column`` (1-based)."""
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(f"{_location(path, line, column)}: {reason}")


class DuplicateKeyError(ConfigParseError):
    """The same key appears twice in one mapping, which would silently drop a value.

    Attributes:
        key: The repeated key, when the parser tells us which one.
    """

    hint = "remove one of the two entries; a later one would silently win"

    def __init__(
        self,
        path: Path | None,
        key: str | None,
        *,
        line: int | None = None,
        column: int | None = None,
        first_line: int | None = None,
    ) -> None:
        """Create the error for the repeated ``key``, also seen first at ``first_line``."""
        self.key = key
        reason = f"duplicate key {key!r}" if key is not None else "duplicate key"
        if first_line is not None:
            reason += f" (first defined at line {first_line})"
        super().__init__(path, reason, line=line, column=column)


@dataclass(frozen=True)
class ConfigIssue:
    """One value the settings model rejected, and where that value came from.

    Attributes:
        key: Dotted key path, list items in brackets: ``store.results_dir``, ``tags[2]``.
        reason: Why the value was rejected, as pydantic words it.
        source: Where the value came from, for people: ``config.yaml:3:5``,
            ``config.yaml:9:7 (profile 'dev')``, ``environment variable AS_BENCH__REPEATS``,
            ``argument``; None when no layer set it (a required key that is missing).
        path: The file the value came from, if it came from a file.
        line: 1-based line in that file, when the format lets us find it (YAML, JSON).
        column: 1-based column in that file, when known.
        env_var: The environment variable the value came from, if it did.
    """

    key: str
    reason: str
    source: str | None = None
    path: Path | None = None
    line: int | None = None
    column: int | None = None
    env_var: str | None = None

    def __str__(self) -> str:
        """Return ``key: reason [source]``."""
        text = f"{self.key or '<top level>'}: {self.reason}"
        return f"{text} [{self.source}]" if self.source else text


class ConfigValidationError(AsConfigError, ValueError):
    """The settings model rejected one or more values; every problem is listed.

    Attributes:
        model: Name of the settings class.
        issues: One entry per rejected value, in pydantic's order.
    """

    hint = "fix the keys listed above, in the file or environment variable named next to each"

    def __init__(self, model: str, issues: Iterable[ConfigIssue]) -> None:
        """Create the error for settings class ``model`` with its ``issues``."""
        self.model = model
        self.issues = list(issues)
        count = len(self.issues)
        lines = [f"invalid settings for {model} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class ProfileNotFoundError(AsConfigError, LookupError):
    """The requested profile is neither a ``profiles`` section nor a sibling file.

    Attributes:
        profile: The requested profile name.
        available: Profile names found in the file's ``profiles`` section.
    """

    hint = "pick one of the profiles listed, or add the section or file"

    def __init__(self, profile: str, reason: str, available: Sequence[str] = ()) -> None:
        """Create the error for ``profile`` with a ``reason`` that says where we looked."""
        self.profile = profile
        self.available = tuple(available)
        message = f"profile {profile!r}: {reason}"
        if self.available:
            message += f"; available profiles: {', '.join(self.available)}"
        super().__init__(message)


class ConfigDumpError(AsConfigError, ValueError):
    """The settings hold a value the chosen format cannot write.

    Attributes:
        fmt: The format being written.
        key: Dotted key path of the value, when known.
    """

    hint = "choose another format, or change the value"

    def __init__(self, fmt: str, reason: str, key: str | None = None) -> None:
        """Create the error for format ``fmt`` at ``key``."""
        self.fmt = fmt
        self.key = key
        where = f" at {key}" if key else ""
        super().__init__(f"cannot write {fmt.upper()}{where}: {reason}")
