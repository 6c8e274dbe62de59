"""Files past the limits of a config (alias bombs, deep nesting, huge integers) fail cleanly.

Each is a `ConfigParseError` that names the file, and the line where the format tells
us, instead of a ``RecursionError``, a ``ValueError`` or gigabytes of memory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings, ConfigParseError, load_settings, read_config_file


class OpenSettings(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGLIMIT__")

    name: str = "bench"
    extra: dict[str, Any] = Field(default_factory=dict)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _laughs(levels: int, fanout: int = 9) -> str:
    """A "billion laughs" mapping: each level names the one below ``fanout`` times."""
    lines = ["extra:", "  l0: &l0 {" + ", ".join(f"k{i}: ha" for i in range(fanout)) + "}"]
    for level in range(1, levels + 1):
        items = ", ".join(f"k{i}: *l{level - 1}" for i in range(fanout))
        lines.append(f"  l{level}: &l{level} {{{items}}}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_with_a_profile_is_refused_at_its_line(tmp_path: Path) -> None:
    # 9**6 = 531441 values once expanded; the profile lays the same bomb over the file's,
    # which the merge would walk value by value (9 levels: hundreds of millions).
    text = _laughs(6) + "profiles:\n  dev:\n    extra:\n      l6: *l6\n"
    path = _write(tmp_path / "bomb.yaml", text)
    with pytest.raises(ConfigParseError) as caught:
        load_settings(OpenSettings, path, profile="dev")
    error = caught.value
    assert error.path == path
    assert "aliases expand to more than 100000 values" in error.reason
    # The first alias that alone passes the limit: l5's first *l4 (9**4 * 2 values).
    column = text.splitlines()[6].index("*l4") + 1
    assert (error.line, error.column) == (7, column)
    assert str(error).startswith(f"{path}:7:{column}: ")
    assert "this alias alone stands for more than 100000" in error.reason


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    text = _laughs(2) + "profiles:\n  dev:\n    extra:\n      l2: *l1\n"
    path = _write(tmp_path / "ok.yaml", text)
    settings = load_settings(OpenSettings, path, profile="dev")
    assert settings.extra["l2"]["k8"] == {f"k{i}": "ha" for i in range(9)}
    assert settings.extra["l1"]["k0"]["k3"] == "ha"


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "cycle.yaml", "name: x\nextra:\n  loop: &loop\n    - *loop\n")
    with pytest.raises(ConfigParseError) as caught:
        load_settings(OpenSettings, path)
    assert caught.value.path == path
    assert "cycle" in caught.value.reason
    assert (caught.value.line, caught.value.column) == (4, 7)


DEEP = 5000


@pytest.mark.parametrize(
    ("filename", "text", "line", "outer"),
    [
        pytest.param(
            "deep.yaml", "extra:\n  x: " + "[" * DEEP + "]" * DEEP + "\n", 2, 2, id="yaml"
        ),
        pytest.param("deep.json", '{\n"extra": ' + "[" * DEEP + "]" * DEEP + "}", 2, 1, id="json"),
        pytest.param(
            "deep.toml", "[extra]\nx = " + "[" * DEEP + "]" * DEEP + "\n", None, 0, id="toml"
        ),
    ],
)
def test_deep_nesting_is_a_parse_error_naming_the_file(
    tmp_path: Path, filename: str, text: str, line: int | None, outer: int
) -> None:
    path = _write(tmp_path / filename, text)
    with pytest.raises(ConfigParseError) as caught:
        read_config_file(path)
    error = caught.value
    assert error.path == path
    assert "values nest deeper than 64 levels, more than a config file may" in error.reason
    assert error.line == line
    if line is not None:
        # The bracket that opens level 65; ``outer`` mappings enclose the first bracket.
        first = text.splitlines()[line - 1].index("[") + 1
        assert error.column == first + 64 - outer


def test_deep_nesting_through_yaml_aliases_is_refused(tmp_path: Path) -> None:
    lines = ["extra:", "  d0: &d0 [leaf]"]
    lines += [f"  d{i}: &d{i} [*d{i - 1}]" for i in range(1, 100)]
    path = _write(tmp_path / "chain.yaml", "\n".join(lines) + "\n")
    with pytest.raises(ConfigParseError) as caught:
        load_settings(OpenSettings, path)
    assert caught.value.path == path
    assert "nest deeper than 64 levels once its aliases are expanded" in caught.value.reason
    assert caught.value.reason.endswith("more than a config file may")
    assert caught.value.line is not None


def test_deep_toml_dotted_keys_name_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "dotted.toml", ".".join(f"k{i}" for i in range(100)) + " = 1\n")
    with pytest.raises(ConfigParseError) as caught:
        read_config_file(path)
    assert caught.value.path == path
    assert "(at k0.k1." in caught.value.reason


def test_nesting_at_the_limit_loads(tmp_path: Path) -> None:
    # The top-level mapping and the "extra" mapping are two of the 64 levels.
    path = _write(tmp_path / "ok.json", '{"extra": {"x": ' + "[" * 62 + "]" * 62 + "}}")
    settings = load_settings(OpenSettings, path)
    value: Any = settings.extra["x"]
    for _ in range(61):
        value = value[0]
    assert value == []


DIGITS = 5000


@pytest.mark.parametrize(
    ("filename", "text", "position"),
    [
        pytest.param("big.yaml", "name: x\nextra:\n  n: " + "7" * DIGITS + "\n", (3, 6), id="yaml"),
        pytest.param(
            "big.json", '{"name": "x",\n "extra": {"n": ' + "7" * DIGITS + "}}", (2, 17), id="json"
        ),
        pytest.param(
            "big.toml", 'name = "x"\n[extra]\nn = ' + "7" * DIGITS + "\n", (3, 5), id="toml"
        ),
    ],
)
def test_an_integer_longer_than_python_reads_names_file_and_line(
    tmp_path: Path, filename: str, text: str, position: tuple[int, int]
) -> None:
    assert sys.get_int_max_str_digits() < DIGITS
    path = _write(tmp_path / filename, text)
    with pytest.raises(ConfigParseError) as caught:
        load_settings(OpenSettings, path)
    error = caught.value
    assert error.path == path
    assert (error.line, error.column) == position
    assert f"an integer of {DIGITS} digits is longer than the" in error.reason
    assert "quote it" in error.reason
