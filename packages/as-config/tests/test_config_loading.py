"""Loading: precedence of the five layers, environment variables, profiles, file edge cases."""

from __future__ import annotations

import codecs
import textwrap
import threading
from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from as_config import (
    AsSettings,
    ConfigSection,
    deep_merge,
    load_settings,
    read_config_file,
)


class Layers(ConfigSection):
    from_default: str = "default"
    from_file: str = "default"
    from_profile: str = "default"
    from_env: str = "default"
    from_arg: str = "default"


class LayeredSettings(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGLAYER__")

    from_default: str = "default"
    from_file: str = "default"
    from_profile: str = "default"
    from_env: str = "default"
    from_arg: str = "default"
    nested: Layers = Field(default_factory=Layers)


def test_precedence_across_all_five_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each layer sets every field at or above its own level, so each field shows which
    # layer won: arguments > environment > profile > file > defaults.
    path = tmp_path / "settings.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            from_file: file
            from_profile: file
            from_env: file
            from_arg: file
            nested:
              from_file: file
              from_profile: file
              from_env: file
              from_arg: file
            profiles:
              dev:
                from_profile: profile
                from_env: profile
                from_arg: profile
                nested:
                  from_profile: profile
                  from_env: profile
                  from_arg: profile
            """
        )
    )
    for name in ["FROM_ENV", "FROM_ARG"]:
        monkeypatch.setenv(f"AS_CFGLAYER__{name}", "env")
        monkeypatch.setenv(f"AS_CFGLAYER__NESTED__{name}", "env")

    settings = load_settings(
        LayeredSettings,
        path,
        profile="dev",
        overrides={"from_arg": "arg", "nested": {"from_arg": "arg"}},
    )

    expected = {
        "from_default": "default",
        "from_file": "file",
        "from_profile": "profile",
        "from_env": "env",
        "from_arg": "arg",
    }
    assert settings.model_dump(exclude={"nested"}) == expected
    # Nested sections merge key by key across the same layers.
    assert settings.nested.model_dump() == expected


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text('from_file = "file"\nfrom_env = "file"\n')
    monkeypatch.setenv("AS_CFGLAYER__FROM_ENV", "env")
    settings = load_settings(LayeredSettings, path)
    assert (settings.from_file, settings.from_env) == ("file", "env")


def test_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGLAYER__FROM_ARG", "env")
    settings = load_settings(LayeredSettings, overrides={"from_arg": "arg"})
    assert settings.from_arg == "arg"


def test_no_file_gives_environment_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGLAYER__FROM_ENV", "env")
    settings = load_settings(LayeredSettings)
    assert settings.from_env == "env"
    assert settings.from_file == "default"


class Store(ConfigSection):
    results_dir: str = "results"
    keep_last: int = 3


class BenchSettings(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGBENCH__")

    results_dir: str = "top"
    repeats: int = 10
    tags: list[str] = Field(default_factory=list)
    store: Store = Field(default_factory=Store)


def test_nested_delimiter_sets_a_nested_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("store:\n  results_dir: from-file\n  keep_last: 7\n")
    monkeypatch.setenv("AS_CFGBENCH__STORE__RESULTS_DIR", "/data/results")
    settings = load_settings(BenchSettings, path)
    assert settings.store.results_dir == "/data/results"
    # The rest of the section still comes from the file.
    assert settings.store.keep_last == 7
    assert settings.results_dir == "top"


def test_single_underscores_belong_to_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGBENCH__RESULTS_DIR", "/top-level")
    monkeypatch.setenv("AS_CFGBENCH__STORE__KEEP_LAST", "9")
    settings = load_settings(BenchSettings)
    assert settings.results_dir == "/top-level"
    assert settings.store.keep_last == 9
    assert settings.store.results_dir == "results"


def test_environment_names_match_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("as_cfgbench__Repeats", "4")
    assert load_settings(BenchSettings).repeats == 4


def test_list_from_environment_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGBENCH__TAGS", '["a", "b"]')
    assert load_settings(BenchSettings).tags == ["a", "b"]


def test_env_prefix_argument_replaces_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGBENCH__REPEATS", "4")
    monkeypatch.setenv("AS_OTHER__REPEATS", "5")
    assert load_settings(BenchSettings, env_prefix="AS_OTHER__").repeats == 5


def test_default_prefix_keeps_shell_variables_out(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plain(AsSettings):
        user: str = "nobody"

    monkeypatch.setenv("USER", "root")
    assert load_settings(Plain).user == "nobody"
    monkeypatch.setenv("AS_USER", "alice")
    assert load_settings(Plain).user == "alice"


def test_direct_construction_ignores_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_CFGBENCH__REPEATS", "3")
    assert BenchSettings().repeats == 3


def test_nested_settings_class_does_not_receive_the_outer_file(tmp_path: Path) -> None:
    class Inner(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGINNER__")
        level: int = 1

    class Outer(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGOUTER__")
        name: str = "x"
        inner: Inner = Field(default_factory=Inner)

    path = tmp_path / "s.yaml"
    path.write_text("name: outer\n")
    settings = load_settings(Outer, path)
    assert settings.name == "outer"
    assert settings.inner.level == 1


def test_concurrent_loads_see_their_own_files(tmp_path: Path) -> None:
    paths = []
    for index in range(8):
        path = tmp_path / f"s{index}.json"
        path.write_text(f'{{"repeats": {index}}}')
        paths.append(path)
    results: dict[int, int] = {}

    def load(index: int) -> None:
        for _ in range(20):
            results[index] = load_settings(BenchSettings, paths[index]).repeats

    threads = [threading.Thread(target=load, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {index: index for index in range(8)}


# Profiles.


def test_profile_section_is_deep_merged(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "repeats: 10\nstore:\n  results_dir: base\n  keep_last: 3\n"
        "profiles:\n  ci:\n    store:\n      keep_last: 1\n"
    )
    settings = load_settings(BenchSettings, path, profile="ci")
    assert settings.store == Store(results_dir="base", keep_last=1)
    assert settings.repeats == 10
    # Without a profile the section is ignored, and never reaches the model.
    assert load_settings(BenchSettings, path).store.keep_last == 3


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
def test_profile_sibling_file(tmp_path: Path, suffix: str) -> None:
    texts = {
        ".yaml": ("repeats: 10\nstore:\n  keep_last: 3\n", "store:\n  results_dir: dev\n"),
        ".json": (
            '{"repeats": 10, "store": {"keep_last": 3}}',
            '{"store": {"results_dir": "dev"}}',
        ),
        ".toml": ("repeats = 10\n[store]\nkeep_last = 3\n", '[store]\nresults_dir = "dev"\n'),
    }
    base, overlay = texts[suffix]
    (tmp_path / f"bench{suffix}").write_text(base)
    (tmp_path / f"bench.dev{suffix}").write_text(overlay)
    settings = load_settings(BenchSettings, tmp_path / f"bench{suffix}", profile="dev")
    assert settings.store == Store(results_dir="dev", keep_last=3)
    assert settings.repeats == 10


def test_sibling_file_wins_over_section(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "repeats: 1\nprofiles:\n  dev:\n    repeats: 2\n    tags: [section]\n"
    )
    (tmp_path / "s.dev.yaml").write_text("repeats: 3\n")
    settings = load_settings(BenchSettings, tmp_path / "s.yaml", profile="dev")
    assert settings.repeats == 3
    assert settings.tags == ["section"]


def test_environment_wins_over_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.yaml").write_text("profiles:\n  dev:\n    repeats: 2\n")
    monkeypatch.setenv("AS_CFGBENCH__REPEATS", "5")
    assert load_settings(BenchSettings, tmp_path / "s.yaml", profile="dev").repeats == 5


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    overlay = {"a": {"c": [3], "e": None}, "f": {"g": 1}}
    merged = deep_merge(base, overlay)
    assert merged == {"a": {"b": 1, "c": [3], "e": None}, "d": 1, "f": {"g": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged["f"]["g"] = 2
    assert overlay["f"] == {"g": 1}


# Reading files.


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("e.yaml", ""),
        ("e.yaml", "\n  \n"),
        ("e.yaml", "# only a comment\n# and another\n"),
        ("e.yaml", "---\n"),
        ("e.yml", "\t\n"),
        ("e.json", ""),
        ("e.json", "  \n\t\n"),
        ("e.toml", ""),
        ("e.toml", "# comment\n\n"),
    ],
)
def test_empty_file_is_an_empty_config(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert read_config_file(path) == {}
    assert load_settings(BenchSettings, path) == BenchSettings()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("b.yaml", "repeats: 3\n"),
        ("b.json", '{"repeats": 3}'),
        ("b.toml", "repeats = 3\n"),
    ],
)
def test_utf8_bom_is_accepted(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_bytes(codecs.BOM_UTF8 + text.encode())
    assert read_config_file(path) == {"repeats": 3}


def test_crlf_line_endings(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_bytes(b"repeats: 3\r\nstore:\r\n  keep_last: 1\r\n")
    (tmp_path / "w.toml").write_bytes(b"repeats = 3\r\n[store]\r\nkeep_last = 1\r\n")
    for name in ["w.yaml", "w.toml"]:
        assert read_config_file(tmp_path / name) == {"repeats": 3, "store": {"keep_last": 1}}


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "UPPER.YML"
    path.write_text("repeats: 3\n")
    assert read_config_file(path) == {"repeats": 3}


def test_yaml_scalars_mean_what_they_look_like(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "country: NO\nanswer: yes\nswitch: on\nflag: true\nflag2: False\n"
        "date: 2024-01-02\nduration: 1:30\nint: 42\nfloat: 1.5\nnothing: ~\nhex: 0x1f\n"
    )
    assert read_config_file(path) == {
        "country": "NO",
        "answer": "yes",
        "switch": "on",
        "flag": True,
        "flag2": False,
        "date": "2024-01-02",
        "duration": "1:30",
        "int": 42,
        "float": 1.5,
        "nothing": None,
        "hex": 31,
    }


def test_yaml_merge_key_is_not_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("base: &base\n  a: 1\n  b: 2\nderived:\n  <<: *base\n  b: 3\n")
    assert read_config_file(path)["derived"] == {"a": 1, "b": 3}


def test_bool_field_still_accepts_yaml_11_words(tmp_path: Path) -> None:
    class Flags(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGFLAGS__")
        enabled: bool = False
        verbose: bool = True

    path = tmp_path / "s.yaml"
    path.write_text("enabled: yes\nverbose: off\n")
    settings = load_settings(Flags, path)
    assert (settings.enabled, settings.verbose) == (True, False)


def test_read_config_file_keeps_profiles(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("a: 1\nprofiles:\n  dev:\n    a: 2\n")
    assert read_config_file(path) == {"a": 1, "profiles": {"dev": {"a": 2}}}


def test_extra_allow_models_accept_unknown_keys(tmp_path: Path) -> None:
    class Open(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGOPEN__", extra="allow")
        known: int = 1

    path = tmp_path / "s.yaml"
    path.write_text("known: 2\nsomething_else: 3\n")
    settings = load_settings(Open, path)
    assert settings.known == 2
    assert settings.model_extra == {"something_else": 3}
