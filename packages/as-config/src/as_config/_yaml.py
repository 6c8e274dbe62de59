"""YAML parsing: a safe loader that rejects duplicate keys and records where keys are.

The loader is PyYAML's ``SafeLoader`` with three YAML 1.1 surprises taken out, so that a
value means what it looks like:

* only ``true``/``false`` (any capitalisation PyYAML's 1.1 rules allow for them) are
  booleans; ``yes``, ``no``, ``on``, ``off`` stay strings (``country: NO``). A bool field
  still accepts them, because pydantic parses those strings as booleans.
* dates and times stay strings; a ``date``/``datetime`` field still parses them.
* ``1:30`` stays a string instead of becoming the base-60 number 90.

Each change only turns something into a string, so text PyYAML's dumper writes still
reads back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from as_config._parsed import KeyPath, ParsedDocument, Position, offset_to_position
from as_config.exceptions import ConfigParseError, DuplicateKeyError

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
# ``timestamp`` is dropped (dates stay strings); ``value`` (a lone ``=``) has no safe
# constructor in PyYAML, so resolving it only ever produced an error.
_REPLACED = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


class _DuplicateKey(Exception):
    """Raised inside the loader; turned into DuplicateKeyError with the file name."""

    def __init__(self, key: object, mark: Mark, first: Mark) -> None:
        super().__init__(key)
        self.key = key
        self.mark = mark
        self.first = first


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys; see the module docstring for scalars."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Construct a mapping, raising on a key that appears twice in the same mapping."""
        seen: dict[Any, Mark] = {}
        for key_node, _value in node.value:
            if key_node.tag == _MERGE:
                # ``<<: *base`` overrides on purpose; only literal repeats are mistakes.
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                # An unhashable key: the base class reports it, with its position.
                continue
            if first is not None:
                raise _DuplicateKey(key, key_node.start_mark, first)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# PyYAML's YAML 1.1 patterns without their base-60 branches.
_Loader.add_implicit_resolver(
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _position(mark: Mark) -> Position:
    # PyYAML counts from 0; people and editors count from 1.
    return mark.line + 1, mark.column + 1


def _key_positions(root: Node) -> dict[KeyPath, Position]:
    """Map each key path to where its key (or list item) starts."""
    positions: dict[KeyPath, Position] = {}
    # Each node is visited once, so aliases cannot make this exponential or endless.
    visited: set[int] = set()
    stack: list[tuple[KeyPath, Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                    child = (*path, str(key_node.value))
                    positions[child] = _position(key_node.start_mark)
                    stack.append((child, value_node))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                positions[child] = _position(item.start_mark)
                stack.append((child, item))
    return positions


def _parse_error(path: Path | None, exc: yaml.YAMLError, text: str) -> ConfigParseError:
    if isinstance(exc, yaml.MarkedYAMLError):
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            reason += f" ({exc.context}"
            if exc.context_mark is not None:
                reason += f" at line {exc.context_mark.line + 1}"
            reason += ")"
        if exc.context == "expected a single document in the stream":
            reason = "found a second YAML document ('---'); a config file holds one"
        elif "'\\t'" in reason:
            reason += "; YAML indentation must use spaces, not tabs"
        elif exc.problem == "mapping values are not allowed here":
            reason += "; quote a value that contains ': '"
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            return ConfigParseError(path, f"invalid YAML: {reason}")
        line, column = _position(mark)
        return ConfigParseError(path, f"invalid YAML: {reason}", line=line, column=column)
    if isinstance(exc, yaml.reader.ReaderError):
        # Raised for control characters; its position is an offset into the text.
        line, column = offset_to_position(text, exc.position)
        return ConfigParseError(
            path,
            f"invalid YAML: character U+{exc.character:04X} is not allowed ({exc.reason})",
            line=line,
            column=column,
        )
    return ConfigParseError(path, f"invalid YAML: {exc}")


def parse_yaml(text: str, path: Path | None) -> ParsedDocument:
    """Parse one YAML document.

    Args:
        text: The document.
        path: The file it came from, for error messages.

    Returns:
        The data (None for an empty document or one with only comments) and key positions.

    Raises:
        DuplicateKeyError: A mapping repeats a key.
        ConfigParseError: The text is not valid YAML or holds more than one document.
    """
    try:
        # The constructor already checks for characters YAML forbids.
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise _parse_error(path, exc, text) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            return ParsedDocument(None)
        data = loader.construct_document(node)
    except _DuplicateKey as dup:
        line, column = _position(dup.mark)
        raise DuplicateKeyError(
            path,
            str(dup.key),
            line=line,
            column=column,
            first_line=_position(dup.first)[0],
        ) from None
    except yaml.YAMLError as exc:
        raise _parse_error(path, exc, text) from exc
    finally:
        loader.dispose()
    return ParsedDocument(data, _key_positions(node), _position(node.start_mark))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that escapes the Unicode line breaks PyYAML would write raw."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # With allow_unicode, PyYAML writes NEL, LS and PS raw inside single quotes, where a
    # reader folds them into a space. Double quotes escape them (\N, \L, \P).
    style = '"' if any(char in data for char in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Write a mapping as block-style YAML in key order, non-ASCII text kept readable."""
    if not data:
        return "{}\n"
    return yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
