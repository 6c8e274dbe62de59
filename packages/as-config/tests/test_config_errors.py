"""Malformed input: each case names the error class and the message a person reads."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from as_config import (
    AsConfigError,
    AsSettings,
    ConfigFileNotFoundError,
    ConfigFileReadError,
    ConfigParseError,
    ConfigSection,
    ConfigValidationError,
    DuplicateKeyError,
    ProfileNotFoundError,
    UnsupportedFormatError,
    load_settings,
    read_config_file,
)


class Store(ConfigSection):
    results_dir: str = "results"
    keep: int = 3


class ErrSettings(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGERR__")

    repeats: int = 10
    name: str = "bench"
    tags: list[str] = Field(default_factory=list)
    store: Store = Field(default_factory=Store)


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes | None  # None: the path is not created (missing); b"<dir>": a directory
    error: type[AsConfigError]
    fragments: tuple[str, ...]
    filename: str = ""


def yaml(name: str, text: str, error: type[AsConfigError], *fragments: str) -> Case:
    return Case(name, text.encode(), error, fragments, "bad.yaml")


def json(name: str, text: str, error: type[AsConfigError], *fragments: str) -> Case:
    return Case(name, text.encode(), error, fragments, "bad.json")


def toml(name: str, text: str, error: type[AsConfigError], *fragments: str) -> Case:
    return Case(name, text.encode(), error, fragments, "bad.toml")


CASES = [
    # Syntax, with the line and column in path:line:column form.
    yaml(
        "yaml-syntax",
        "name: a: b\n",
        ConfigParseError,
        "bad.yaml:1:8",
        "invalid YAML",
        "quote a value",
        "mapping values are not allowed here",
    ),
    yaml(
        "yaml-unclosed-list",
        "tags: [a, b\nname: x\n",
        ConfigParseError,
        "bad.yaml:2:5",
        "while parsing a flow sequence at line 1",
    ),
    yaml(
        "yaml-tab-indent",
        "store:\n\tresults_dir: x\n",
        ConfigParseError,
        "bad.yaml:2:1",
        "cannot start any token",
        "spaces, not tabs",
    ),
    yaml(
        "yaml-two-documents",
        "name: a\n---\nname: b\n",
        ConfigParseError,
        "bad.yaml:2:1",
        "found a second YAML document",
    ),
    yaml(
        "yaml-python-tag",
        "name: !!python/object:os.system x\n",
        ConfigParseError,
        "bad.yaml:1:7",
        "could not determine a constructor",
    ),
    yaml(
        "yaml-control-char",
        "name: a\x07b\n",
        ConfigParseError,
        "bad.yaml:1:8",
        "U+0007 is not allowed",
    ),
    json(
        "json-syntax", '{\n  "repeats": 1,\n}\n', ConfigParseError, "bad.json:3:1", "invalid JSON"
    ),
    json(
        "json-unquoted",
        "{name: 1}",
        ConfigParseError,
        "bad.json:1:2",
        "Expecting property name enclosed in double quotes",
    ),
    toml(
        "toml-syntax",
        "repeats = \n",
        ConfigParseError,
        "bad.toml:1:11",
        "invalid TOML: Invalid value",
    ),
    toml("toml-unclosed-string", 'name = "abc\n', ConfigParseError, "bad.toml:1:", "invalid TOML"),
    # Duplicate keys, in every format.
    yaml(
        "yaml-duplicate",
        "repeats: 1\nname: x\nrepeats: 2\n",
        DuplicateKeyError,
        "bad.yaml:3:1",
        "duplicate key 'repeats' (first defined at line 1)",
    ),
    yaml(
        "yaml-nested-duplicate",
        "store:\n  keep: 1\n  keep: 2\n",
        DuplicateKeyError,
        "bad.yaml:3:3",
        "duplicate key 'keep' (first defined at line 2)",
    ),
    json(
        "json-duplicate",
        '{\n  "repeats": 1,\n  "repeats": 2\n}\n',
        DuplicateKeyError,
        "bad.json:3:3",
        "duplicate key 'repeats' (first defined at line 2)",
    ),
    json(
        "json-nested-duplicate",
        '{"store": {"keep": 1}, "other": {"keep": 1,\n "x": 2, "keep": 3}}',
        DuplicateKeyError,
        "bad.json:2:10",
        "duplicate key 'keep' (first defined at line 1)",
    ),
    toml(
        "toml-duplicate",
        "repeats = 1\nname = 'x'\nrepeats = 2\n",
        DuplicateKeyError,
        "bad.toml:3:12",
        "duplicate key 'repeats'",
    ),
    toml(
        "toml-duplicate-table",
        "[store]\nkeep = 1\n[store]\n",
        DuplicateKeyError,
        "bad.toml:3:",
        "duplicate key 'store'",
    ),
    # Encoding.
    Case(
        "utf16-bom",
        codecs.BOM_UTF16_LE + "name: x\n".encode("utf-16-le"),
        ConfigParseError,
        ("bad.yaml:1:1", "encoded as UTF-16; save it as UTF-8"),
        "bad.yaml",
    ),
    Case(
        "non-utf8",
        b"repeats: 1\nname: caf\xe9\n",
        ConfigParseError,
        ("bad.yaml:2:10", "not valid UTF-8 (byte 0xe9)"),
        "bad.yaml",
    ),
    Case(
        "latin1-json",
        b'{"name": "\xff"}',
        ConfigParseError,
        ("bad.json:1:11", "not valid UTF-8 (byte 0xff)"),
        "bad.json",
    ),
    # Shape.
    yaml(
        "yaml-top-level-list",
        "- 1\n- 2\n",
        ConfigParseError,
        "bad.yaml:1:1",
        "top level must be a mapping of keys to values, found a list",
    ),
    json("json-top-level-string", '  "hello"', ConfigParseError, "bad.json:1:3", "found a string"),
    json("json-top-level-null", "null", ConfigParseError, "found null"),
    yaml("yaml-top-level-scalar", "just text\n", ConfigParseError, "found a string"),
    yaml(
        "profiles-not-mapping",
        "repeats: 1\nprofiles: [dev]\n",
        ConfigParseError,
        "bad.yaml:2:1",
        "'profiles' must be a mapping",
    ),
    yaml(
        "yaml-number-key",
        "repeats: 1\n2: two\n",
        ConfigParseError,
        "bad.yaml:2:1",
        "key 2 is a number, not a string; quote it",
    ),
    # Files and suffixes.
    Case(
        "unsupported-suffix",
        b"name = x\n",
        UnsupportedFormatError,
        ("bad.ini", "unsupported config format '.ini'", "supported: .yaml, .yml, .json, .toml"),
        "bad.ini",
    ),
    Case(
        "no-suffix",
        b"name: x\n",
        UnsupportedFormatError,
        ("config: no suffix to tell the format",),
        "config",
    ),
    Case(
        "directory",
        b"<dir>",
        ConfigFileReadError,
        ("cannot read config file", "bad.yaml", "it is a directory, not a file"),
        "bad.yaml",
    ),
    Case(
        "missing-file",
        None,
        ConfigFileNotFoundError,
        ("config file not found:", "missing.yaml"),
        "missing.yaml",
    ),
    # Values the model rejects: every key path, the reason and where the value came from.
    yaml(
        "wrong-type",
        "repeats: many\n",
        ConfigValidationError,
        "invalid settings for ErrSettings (1 problem)",
        "repeats: Input should be a valid integer",
        "[",
        "bad.yaml:1:1]",
    ),
    yaml(
        "unknown-key",
        "repaets: 3\n",
        ConfigValidationError,
        "repaets: unknown key; did you mean 'repeats'?",
        "bad.yaml:1:1",
    ),
    json(
        "nested-unknown-key",
        '{\n  "store": {\n    "results_dri": "x"\n  }\n}',
        ConfigValidationError,
        "store.results_dri: unknown key; did you mean 'results_dir'?",
        "bad.json:3:5",
    ),
    yaml(
        "several-bad-keys",
        "repeats: x\nstore:\n  keep: [1]\ntags: [a, [b]]\n",
        ConfigValidationError,
        "(3 problems)",
        "repeats: Input should be a valid integer",
        "bad.yaml:1:1",
        "store.keep: Input should be a valid integer",
        "bad.yaml:3:3",
        "tags[1]: Input should be a valid string",
        "bad.yaml:4:11",
    ),
    toml(
        "toml-wrong-type",
        "[store]\nkeep = 'x'\n",
        ConfigValidationError,
        "store.keep: Input should be a valid integer",
        "[",
        "bad.toml]",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input_names_the_problem(case: Case, tmp_path: Path) -> None:
    path = tmp_path / case.filename
    if case.content == b"<dir>":
        path.mkdir()
    elif case.content is not None:
        path.write_bytes(case.content)

    with pytest.raises(case.error) as caught:
        load_settings(ErrSettings, path)

    message = str(caught.value)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert type(caught.value) is case.error


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 15


def test_parse_error_carries_path_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [\n")
    with pytest.raises(ConfigParseError) as caught:
        read_config_file(path)
    assert caught.value.path == path
    assert caught.value.line == 3
    assert caught.value.column == 1
    assert isinstance(caught.value, ValueError)


def test_duplicate_key_error_carries_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"a": 1, "a": 2}')
    with pytest.raises(DuplicateKeyError) as caught:
        read_config_file(path)
    assert caught.value.key == "a"
    assert (caught.value.line, caught.value.column) == (1, 10)


def test_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        read_config_file(tmp_path / "nope.toml")
    assert isinstance(caught.value, ConfigFileNotFoundError)
    assert caught.value.path == tmp_path / "nope.toml"


def test_relative_missing_path_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigFileNotFoundError, match=r"looked for .*conf\.yaml"):
        read_config_file("conf.yaml")


def test_directory_is_an_os_error(tmp_path: Path) -> None:
    (tmp_path / "conf.yaml").mkdir()
    with pytest.raises(OSError, match="is a directory"):
        read_config_file(tmp_path / "conf.yaml")


def test_validation_error_lists_structured_issues(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("repeats: x\nstore:\n  keep: y\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(ErrSettings, path)
    issues = caught.value.issues
    assert [issue.key for issue in issues] == ["repeats", "store.keep"]
    assert issues[1].path == path
    assert (issues[1].line, issues[1].column) == (3, 3)
    assert issues[1].env_var is None
    assert caught.value.model == "ErrSettings"


def test_environment_value_is_named_in_the_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  keep: 1\n")
    monkeypatch.setenv("AS_CFGERR__STORE__KEEP", "lots")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(ErrSettings, path)
    (issue,) = caught.value.issues
    assert issue.env_var == "AS_CFGERR__STORE__KEEP"
    assert "store.keep: Input should be a valid integer" in str(caught.value)
    assert "[environment variable AS_CFGERR__STORE__KEEP]" in str(caught.value)


def test_bad_json_in_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGERR__TAGS", "not json")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(ErrSettings)
    message = str(caught.value)
    assert "tags: cannot decode the value" in message
    assert "environment variable AS_CFGERR__TAGS" in message


def test_argument_value_is_named_in_the_issue() -> None:
    with pytest.raises(ConfigValidationError, match=r"repeats: .* \[argument\]"):
        load_settings(ErrSettings, overrides={"repeats": "x"})


def test_missing_required_key_says_how_to_set_it(tmp_path: Path) -> None:
    class Required(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGREQ__")
        store: Store
        token: str

    path = tmp_path / "c.yaml"
    path.write_text("store: {}\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(Required, path)
    assert str(caught.value).endswith(
        "token: required, but not set; set it in the config file or in the environment "
        "variable AS_CFGREQ__TOKEN"
    )


def test_profile_value_is_named_with_its_profile(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("repeats: 1\nprofiles:\n  dev:\n    repeats: x\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(ErrSettings, path, profile="dev")
    assert f"[{path}:4:5 (profile 'dev')]" in str(caught.value)


def test_unknown_profile_lists_the_available_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("profiles:\n  dev: {}\n  ci: {}\n")
    with pytest.raises(ProfileNotFoundError) as caught:
        load_settings(ErrSettings, path, profile="prod")
    assert isinstance(caught.value, LookupError)
    message = str(caught.value)
    assert "no 'profiles.prod' section in" in message
    assert "c.prod.yaml" in message
    assert message.endswith("available profiles: ci, dev")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden"])
def test_profile_name_cannot_reach_other_files(name: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("repeats: 1\n")
    with pytest.raises(ProfileNotFoundError, match="letters, digits"):
        load_settings(ErrSettings, path, profile=name)


def test_profile_without_a_file() -> None:
    with pytest.raises(ProfileNotFoundError, match="no config file"):
        load_settings(ErrSettings, profile="dev")


def test_failed_secret_is_not_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class WithToken(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGTOK__")
        token: SecretStr = Field(default=SecretStr("x" * 20), min_length=20)

    monkeypatch.setenv("AS_CFGTOK__TOKEN", "hunter2-short")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(WithToken)
    assert "token:" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    # No chained pydantic error either: its message would show the rejected input.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_load_settings_rejects_a_non_settings_class() -> None:
    with pytest.raises(TypeError, match=r"subclass of as_config\.AsSettings"):
        load_settings(Store)  # type: ignore[type-var]
