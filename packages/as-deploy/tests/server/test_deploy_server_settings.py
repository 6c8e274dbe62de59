"""Server settings from files and ``AS_DEPLOY__*`` variables, and ``as-deploy serve`` errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import as_logging
from as_config import ConfigValidationError, load_settings
from as_deploy.cli import main
from as_deploy.settings import ServerSettings


@pytest.fixture(autouse=True)
def _no_deploy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for key in list(os.environ):
        if key.upper().startswith("AS_DEPLOY__"):
            monkeypatch.delenv(key)
    yield
    as_logging.reset()  # the CLI configures logging; leave the process as it was


def test_deploy_server_settings_defaults() -> None:
    settings = ServerSettings()
    assert settings.repo is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.batching.enabled and settings.batching.max_batch_size == 32
    assert settings.batching.max_wait_ms == 2.0
    assert settings.limits.max_body_bytes == 1024 * 1024
    assert settings.preload is None and settings.max_loaded_models == 4


def test_deploy_server_settings_from_env_with_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_DEPLOY__BATCHING__MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("AS_DEPLOY__BATCHING__ENABLED", "false")
    monkeypatch.setenv("AS_DEPLOY__LIMITS__REQUEST_TIMEOUT_S", "2.5")
    monkeypatch.setenv("AS_DEPLOY__RUNTIME__INTRA_OP_THREADS", "2")
    monkeypatch.setenv("AS_DEPLOY__PRELOAD", '["digits-cnn:1"]')
    settings = load_settings(ServerSettings)
    assert settings.batching.max_batch_size == 7 and settings.batching.enabled is False
    assert settings.limits.request_timeout_s == 2.5
    assert settings.runtime.intra_op_threads == 2
    assert settings.preload == ["digits-cnn:1"]


def test_deploy_server_settings_from_yaml_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        "repo: models\n"
        "port: 9001\n"
        "max_loaded_models: 2\n"
        "batching:\n  max_batch_size: 64\n  max_wait_ms: 5\n"
        "limits:\n  max_concurrency: 8\n"
    )
    monkeypatch.setenv("AS_DEPLOY__LIMITS__MAX_CONCURRENCY", "3")
    settings = load_settings(ServerSettings, config)
    assert settings.repo == Path("models") and settings.port == 9001
    assert settings.max_loaded_models == 2
    assert settings.batching.max_batch_size == 64 and settings.batching.max_wait_ms == 5
    assert settings.limits.max_concurrency == 3  # the environment wins over the file


def test_deploy_server_settings_refuse_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("preload: ['../etc']\nbatching:\n  max_batch_size: 0\n  colour: red\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_settings(ServerSettings, config)
    message = str(caught.value)
    assert "server.yaml" in message
    assert "batching.max_batch_size" in message
    assert "batching.colour" in message
    assert "preload" in message


def test_deploy_server_cli_malformed_config_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("batching:\n  max_batch_size: [1,\n")
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--config", str(config)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "error:" in err


def test_deploy_server_cli_invalid_value_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("batching:\n  max_batch_size: -1\n")
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--config", str(config)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "server.yaml" in err and "batching.max_batch_size" in err


def test_deploy_server_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--repo", str(tmp_path / "nowhere")])
    assert caught.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--log-level", "loud", "--repo", str(tmp_path)])
    assert caught.value.code == 2
    assert "--log-level 'loud'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "70000"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--http", "h2", "--repo", str(tmp_path)])
    assert caught.value.code == 2
    assert "--http 'h2' is not a parser" in capsys.readouterr().err


def test_deploy_server_cli_port_in_use_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as caught:
            main(["serve", "--repo", str(tmp_path), "--port", str(port)])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert f"could not listen on 127.0.0.1:{port}" in err
    assert "pick another --port" in err


def test_deploy_server_http_setting_picks_the_parser_and_loop() -> None:
    from as_deploy.cli.serve import _stack

    # auto: httptools on uvloop when both are installed, else the pure-Python pair.
    assert _stack("auto", True) == ("httptools", "uvloop")
    assert _stack("auto", False) == ("h11", "asyncio")
    assert _stack("h11", True) == ("h11", "asyncio")
    assert _stack("httptools", True) == ("httptools", "uvloop")
    assert ServerSettings().http == "auto"
    with pytest.raises(ValueError, match="http"):
        ServerSettings(http="h2")  # type: ignore[arg-type]
