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

It also refuses, with the line, what would otherwise end in a ``RecursionError``, a
``ValueError`` or an exhausted memory (see :mod:`as_config._limits`): values nested
deeper than ``MAX_DEPTH``, integers longer than Python reads, an alias inside the value
it names, and aliases that expand to more than ``MAX_VALUES`` values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from as_config._limits import MAX_DEPTH, MAX_VALUES, too_deep, too_long_integer
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
    """SafeLoader that rejects duplicate keys; see the module docstring for the rest."""

    def __init__(self, stream: str) -> None:
        """Prepare to read ``stream``."""
        super().__init__(stream)
        self.depth = 0
        # Where each alias was used, and the node it stands for.
        self.aliases: list[tuple[Mark, Node]] = []

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, refusing nesting deeper than ``MAX_DEPTH`` before it recurses."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            # The pure-Python loader's marks are yaml.error.Mark (LibYAML's are not).
            if node is not None and isinstance(event.start_mark, Mark):
                self.aliases.append((event.start_mark, node))
            return node
        nests = isinstance(event, MappingStartEvent | SequenceStartEvent)
        if nests and self.depth >= MAX_DEPTH:
            raise ComposerError(
                None, None, too_deep("YAML").removeprefix("invalid YAML: "), event.start_mark
            )
        self.depth += nests
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= nests

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """Construct an integer, refusing one longer than Python reads, with its position."""
        try:
            return int(super().construct_yaml_int(node))
        except ValueError:
            digits = sum(char.isdigit() for char in str(node.value))
            raise ConstructorError(None, None, too_long_integer(digits), node.start_mark) from None

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


_Loader.add_constructor(_INT, _Loader.construct_yaml_int)
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


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Node, aliases: list[tuple[Mark, Node]], path: Path | None) -> None:
    """Refuse aliases that form a cycle, nest too deeply or expand to too many values.

    The composed nodes share what an alias names, so the document is small in memory; but
    everything after parsing (the profile merge, validation, dumping) sees it expanded.
    Sizes and depths are counted once per node, so this takes time in proportion to the
    text, however much the aliases would expand.

    Raises:
        ConfigParseError: A cycle, nesting deeper than ``MAX_DEPTH``, or more than
            ``MAX_VALUES`` values; at the alias that is used (or the node that nests).
    """
    if not aliases:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            # Capped: past the limit the exact figure does not matter.
            size[key] = min(1 + sum(size[id(c)] for c in children), MAX_VALUES + 1)
            nests = isinstance(node, MappingNode | SequenceNode)
            depth[key] = nests + max((depth[id(c)] for c in children), default=0)
            continue
        if key in size:
            continue
        if key in open_nodes:
            mark = next((m for m, target in aliases if target is node), node.start_mark)
            line, column = _position(mark)
            raise ConfigParseError(
                path,
                "invalid YAML: an alias is used inside the value it names (a cycle)",
                line=line,
                column=column,
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)
    if depth[id(root)] > MAX_DEPTH:
        node = root
        for _ in range(MAX_DEPTH):
            node = max(_children(node), key=lambda child: depth[id(child)])
        line, column = _position(node.start_mark)
        raise ConfigParseError(
            path, too_deep("YAML", " once its aliases are expanded"), line=line, column=column
        )
    if size[id(root)] > MAX_VALUES:
        # The first alias that alone stands for too many values, else the largest one.
        mark, target = next(
            (pair for pair in aliases if size[id(pair[1])] > MAX_VALUES),
            max(aliases, key=lambda pair: size[id(pair[1])]),
        )
        alone = size[id(target)]
        figure = f"more than {MAX_VALUES}" if alone > MAX_VALUES else str(alone)
        line, column = _position(mark)
        raise ConfigParseError(
            path,
            f"invalid YAML: its aliases expand to more than {MAX_VALUES} values (this alias "
            f"alone stands for {figure}); write the values out, or nest fewer aliases in "
            "aliases",
            line=line,
            column=column,
        )


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
        _check_expansion(node, loader.aliases, path)
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
