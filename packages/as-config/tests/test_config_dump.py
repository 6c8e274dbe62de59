"""Dumping: round trips through every format, secrets masked, atomic writes."""

from __future__ import annotations

import logging
import math
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, SecretBytes, SecretStr
from pydantic_settings import SettingsConfigDict

from as_config import (
    SECRET_MASK,
    AsSettings,
    ConfigDumpError,
    ConfigSection,
    UnsupportedFormatError,
    dump_settings,
    load_settings,
    read_config_file,
)

FORMATS = ["yaml", "json", "toml"]


class Inner(ConfigSection):
    label: str = ""
    weights: list[float] = Field(default_factory=list)
    enabled: bool = False


class RoundTrip(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGRT__")

    name: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    tags: list[str] = Field(default_factory=list)
    sizes: list[int] = Field(default_factory=list)
    maybe: int | None = None
    inner: Inner = Field(default_factory=Inner)
    stages: list[Inner] = Field(default_factory=list)


# Text every format can hold: no lone surrogates (not encodable as UTF-8). Control
# characters, quotes, newlines, unicode and YAML-looking words ("yes", "1:30", "null") are
# all in; each format must quote or escape them.
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)
# TOML integers are 64-bit.
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
inners = st.builds(Inner, label=texts, weights=st.lists(floats, max_size=4), enabled=st.booleans())
round_trips = st.builds(
    RoundTrip,
    name=texts,
    count=ints,
    ratio=floats,
    flag=st.booleans(),
    tags=st.lists(texts, max_size=4),
    sizes=st.lists(ints, max_size=4),
    maybe=st.none() | ints,
    inner=inners,
    stages=st.lists(inners, max_size=3),
)


# The autouse environment fixture runs once per test, not per example; that is fine here,
# because no example changes the environment. No deadline: each example writes and reads
# three files, and disk time on a busy machine is no property of the code.
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(original=round_trips)
def test_round_trip_through_every_format(original: RoundTrip) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for fmt in FORMATS:
            path = Path(directory) / f"settings.{fmt}"
            dump_settings(original, path)
            loaded = load_settings(RoundTrip, path)
            assert loaded == original, (fmt, path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_dump_returns_text_for_a_format_name(fmt: str, tmp_path: Path) -> None:
    text = dump_settings(RoundTrip(name="x", count=2), fmt)
    path = tmp_path / f"s.{fmt}"
    path.write_text(text, encoding="utf-8")
    assert load_settings(RoundTrip, path) == RoundTrip(name="x", count=2)
    assert not list(tmp_path.glob("*.tmp"))


def test_dump_formats_look_like_their_format() -> None:
    value = RoundTrip(name="bench", count=3, inner=Inner(label="a"))
    assert dump_settings(value, "yaml").startswith("name: bench\ncount: 3\n")
    assert dump_settings(value, "json").startswith('{\n  "name": "bench",\n  "count": 3,')
    toml = dump_settings(value, "toml")
    assert toml.startswith('name = "bench"\ncount = 3\n')
    assert '[inner]\nlabel = "a"\n' in toml


def test_toml_leaves_out_none(tmp_path: Path) -> None:
    text = dump_settings(RoundTrip(maybe=None), "toml")
    assert "maybe" not in text
    assert "maybe: null" in dump_settings(RoundTrip(maybe=None), "yaml")


def test_toml_refuses_none_inside_a_list() -> None:
    with pytest.raises(
        ConfigDumpError, match=r"cannot write TOML at values\[1\]: TOML has no null"
    ):
        dump_settings({"values": [1, None]}, "toml")


def test_json_refuses_nan() -> None:
    with pytest.raises(ConfigDumpError, match="cannot write JSON at ratio: JSON cannot hold nan"):
        dump_settings(RoundTrip(ratio=math.nan), "json")
    assert "ratio = nan" in dump_settings(RoundTrip(ratio=math.nan), "toml")


def test_unknown_format_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="supported: yaml, json, toml"):
        dump_settings(RoundTrip(), tmp_path / "s.txt", fmt="ini")
    with pytest.raises(UnsupportedFormatError, match=r"supported: \.yaml, \.yml, \.json, \.toml"):
        dump_settings(RoundTrip(), tmp_path / "s.ini")


def test_format_argument_wins_over_suffix(tmp_path: Path) -> None:
    path = tmp_path / "settings.conf"
    dump_settings(RoundTrip(name="x"), path, fmt="json")
    assert path.read_text().startswith('{\n  "name": "x"')


def test_a_path_object_named_like_a_format_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsupportedFormatError):
        # A Path is always a file, and "json" has no suffix.
        dump_settings(RoundTrip(), Path("json"))
    dump_settings(RoundTrip(), Path("json"), fmt="json")
    assert (tmp_path / "json").is_file()


def test_dump_to_file_is_atomic_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "settings.yaml"
    text = dump_settings(RoundTrip(name="x"), path)
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.yaml"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("name: old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        dump_settings(RoundTrip(name="new"), path)
    assert path.read_text() == "name: old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.yaml"]


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("")
    path.chmod(0o640)
    dump_settings(RoundTrip(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_dump_a_plain_mapping() -> None:
    assert (
        dump_settings({"a": {"b": [1, 2]}}, "json")
        == '{\n  "a": {\n    "b": [\n      1,\n      2\n    ]\n  }\n}\n'
    )


# Secrets.


class Vault(ConfigSection):
    password: SecretStr = SecretStr("")


class Credentials(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_CFGSEC__")

    user: str = "me"
    token: SecretStr = SecretStr("")
    key: SecretBytes = SecretBytes(b"")
    vault: Vault = Field(default_factory=Vault)
    spares: list[SecretStr] = Field(default_factory=list)


SECRETS = ["tok-3141592", "key-2718281", "pw-1618033", "spare-1414213"]


def _credentials() -> Credentials:
    return Credentials(
        token=SecretStr(SECRETS[0]),
        key=SecretBytes(SECRETS[1].encode()),
        vault=Vault(password=SecretStr(SECRETS[2])),
        spares=[SecretStr(SECRETS[3])],
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_dump_masks_secrets(fmt: str, tmp_path: Path) -> None:
    text = dump_settings(_credentials(), fmt)
    assert text.count(SECRET_MASK) == 4
    for secret in SECRETS:
        assert secret not in text
    path = tmp_path / f"c.{fmt}"
    dump_settings(_credentials(), path)
    for secret in SECRETS:
        assert secret not in path.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_reveal_secrets_writes_them_and_loads_back(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"c.{fmt}"
    text = dump_settings(_credentials(), path, reveal_secrets=True)
    for secret in SECRETS:
        assert secret in text
    assert SECRET_MASK not in text
    loaded = load_settings(Credentials, path)
    assert loaded.token.get_secret_value() == SECRETS[0]
    assert loaded.key.get_secret_value() == SECRETS[1].encode()
    assert loaded.vault.password.get_secret_value() == SECRETS[2]
    assert loaded.spares[0].get_secret_value() == SECRETS[3]
    # A file holding plain-text secrets is readable by its owner only.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secrets_are_masked_in_repr_str_and_log_records(caplog: pytest.LogCaptureFixture) -> None:
    credentials = _credentials()
    logger = logging.getLogger("as_config.tests")
    with caplog.at_level(logging.INFO, logger="as_config.tests"):
        logger.info("loaded %s", credentials)
        logger.info("loaded %r", credentials)
        logger.info("token %s", credentials.token)
    assert len(caplog.records) == 3
    for text in [repr(credentials), str(credentials), caplog.text]:
        assert SECRET_MASK in text
        for secret in SECRETS:
            assert secret not in text


def test_masked_dump_does_not_load_back_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    dump_settings(_credentials(), path)
    assert read_config_file(path)["token"] == SECRET_MASK
