"""``as-bench hw`` and the command line's error handling and exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import as_bench
import as_logging
from as_bench.cli import app, main
from as_bench.exceptions import ProbeError, SuiteError
from as_bench.probe import HardwareInfo


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The root callback configures as-logging, as an application does; undo it.
    yield
    as_logging.reset()


def _script() -> Path:
    script = Path(sys.executable).with_name("as-bench")
    if not script.exists():
        pytest.skip(f"the as-bench console script is not installed next to {sys.executable}")
    return script


def test_console_script_hw_json_validates() -> None:
    done = subprocess.run(
        [str(_script()), "hw", "--json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    info = HardwareInfo.model_validate_json(done.stdout)
    assert info.libraries["as-bench"] == as_bench.__version__
    assert info.memory.total_bytes > 0


def test_python_m_hw_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "as_bench", "hw"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr
    for label in ("OS", "CPU", "Cores", "Memory", "as-bench", "OMP_NUM_THREADS"):
        assert label in done.stdout
    assert as_bench.__version__ in done.stdout


def test_cli_runner_hw() -> None:
    result = CliRunner().invoke(app, ["hw", "--json"])
    assert result.exit_code == 0, result.output
    assert HardwareInfo.model_validate_json(result.stdout).schema_version == 1
    table = CliRunner().invoke(app, ["hw"])
    assert table.exit_code == 0 and "Memory" in table.stdout


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"as-bench {as_bench.__version__}"


def test_success_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["hw", "--json"]) == 0
    HardwareInfo.model_validate_json(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["hw", "--bogus"], "No such option: --bogus"), (["no-such-command"], "No such command")],
)
def test_usage_errors_exit_two(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(argv) == 2
    err = capsys.readouterr().err
    assert "Usage: as-bench" in err and message in err


def test_no_arguments_prints_help_and_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main([]) == 2
    out = capsys.readouterr().out
    assert "Usage: as-bench" in out and "hw" in out and "--debug" in out


def _raise(exc: Exception) -> object:
    def fake_probe(*, refresh: bool = False) -> HardwareInfo:
        raise exc

    return fake_probe


def test_failure_is_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("as_bench.probe.probe", _raise(ProbeError("sysctl did not answer")))
    assert _main(["hw"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: sysctl did not answer")
    assert "hint: run again with --debug" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("as_bench.probe.probe", _raise(ProbeError("sysctl did not answer")))
    assert _main(["--debug", "hw"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: sysctl did not answer" in err


def test_unexpected_error_and_usage_like_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("as_bench.probe.probe", _raise(KeyError("boom")))
    assert _main(["hw"]) == 1
    assert "error: unexpected KeyError: 'boom'" in capsys.readouterr().err
    monkeypatch.setattr("as_bench.probe.probe", _raise(SuiteError("--batch-size must be > 0")))
    assert _main(["hw"]) == 2
    assert "error: --batch-size must be > 0" in capsys.readouterr().err
