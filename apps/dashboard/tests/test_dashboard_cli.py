"""The ``dashboard`` command: settings in, a headless and offline Streamlit command out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from as_dashboard.app import SETTINGS_ARG
from as_dashboard.cli import ENTRY_SCRIPT, main, streamlit_command
from as_dashboard.settings import DashboardSettings, load_dashboard_settings


@pytest.fixture(autouse=True)
def no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AS_DASHBOARD__")]:
        monkeypatch.delenv(name)


def test_streamlit_runs_headless_without_usage_statistics_on_the_configured_address() -> None:
    command = streamlit_command(DashboardSettings(host="0.0.0.0", port=8601))
    assert command[1:5] == ["-m", "streamlit", "run", str(ENTRY_SCRIPT)]
    assert ENTRY_SCRIPT.is_file()
    for flag in (
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.address=0.0.0.0",
        "--server.port=8601",
        "--server.fileWatcherType=none",
    ):
        assert flag in command
    handed = command[command.index(SETTINGS_ARG) + 1]
    assert DashboardSettings.model_validate_json(handed).port == 8601


def test_options_override_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "dashboard.yaml"
    config.write_text("port: 9000\nserver_url: http://model-server:8000/\nrefresh_s: 5\n")
    monkeypatch.setenv("AS_DASHBOARD__REFRESH_S", "3")
    assert main(["--config", str(config), "--port", "9100", "--store", "a", "--print-command"]) == 0
    command = capsys.readouterr().out.strip()
    settings = json.loads(command.split(f"{SETTINGS_ARG} ", 1)[1])
    assert settings["port"] == 9100  # the option
    assert settings["refresh_s"] == 3  # the environment over the file
    assert settings["server_url"] == "http://model-server:8000"  # the file, normalised
    assert settings["stores"] == ["a"]
    assert load_dashboard_settings(config).port == 9000


def test_invalid_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server-url", "ftp://x", "--print-command"]) == 2
    assert "server_url" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("port: 70000\n")
    assert main(["--config", str(config), "--print-command"]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "bad.yaml" in err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
