"""The as-config command line: exit codes 0/1/2 and what a person reads."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import as_config
from as_config.cli import app, main

SCHEMA_MODULE = "cfg_cli_schema"
SCHEMA = f"{SCHEMA_MODULE}:CliSettings"
SCHEMA_SOURCE = textwrap.dedent(
    """\
    from pydantic import Field, SecretStr
    from pydantic_settings import SettingsConfigDict

    from as_config import AsSettings, ConfigSection


    class Store(ConfigSection):
        results_dir: str = "results"
        keep_last: int = 3


    class CliSettings(AsSettings):
        model_config = SettingsConfigDict(env_prefix="AS_CFGCLI__")

        repeats: int = 10
        token: SecretStr = SecretStr("")
        store: Store = Field(default_factory=Store)


    NOT_A_CLASS = 3
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding the schema module and config files, made the working directory."""
    (tmp_path / f"{SCHEMA_MODULE}.py").write_text(SCHEMA_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, SCHEMA_MODULE, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.yaml").write_text(
        "repeats: 3\ntoken: s3cr3t-value\nstore:\n  results_dir: out\n"
        "profiles:\n  ci:\n    repeats: 1\n"
    )
    (tmp_path / "invalid.yaml").write_text("repeats: lots\nstore:\n  keep_lst: 2\n")
    (tmp_path / "good.ini").write_text("repeats = 3\n")
    (tmp_path / "broken.json").write_text('{\n  "repeats": 3,\n  "repeats": 4\n}\n')
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the command line as its console script does: main() with its error handling."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main() always exits
            code = 0
    return code, out.getvalue(), err.getvalue()


def test_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0
    assert out == f"as-config {as_config.__version__}\n"


def test_validate_valid_file(workdir: Path) -> None:
    code, out, err = invoke("validate", "good.yaml", "--schema", SCHEMA)
    assert code == 0, err
    assert out == "valid: good.yaml for CliSettings\n"


def test_validate_with_profile(workdir: Path) -> None:
    code, out, _ = invoke("validate", "good.yaml", "--schema", SCHEMA, "--profile", "ci")
    assert code == 0
    assert out == "valid: good.yaml with profile 'ci' for CliSettings\n"


def test_validate_invalid_file_lists_every_problem(workdir: Path) -> None:
    code, out, err = invoke("validate", "invalid.yaml", "--schema", SCHEMA)
    assert code == 1
    assert out == ""
    assert err.startswith("error: invalid settings for CliSettings (2 problems):\n")
    assert "  repeats: Input should be a valid integer" in err
    assert "[invalid.yaml:1:1]" in err
    assert "  store.keep_lst: unknown key; did you mean 'keep_last'? [invalid.yaml:3:3]" in err
    assert "hint: fix the keys listed above" in err
    assert "Traceback" not in err


def test_validate_names_the_environment_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_CFGCLI__STORE__KEEP_LAST", "many")
    code, _, err = invoke("validate", "good.yaml", "--schema", SCHEMA)
    assert code == 1
    assert "store.keep_last: Input should be a valid integer" in err
    assert "[environment variable AS_CFGCLI__STORE__KEEP_LAST]" in err


def test_validate_parse_error(workdir: Path) -> None:
    code, _, err = invoke("validate", "broken.json", "--schema", SCHEMA)
    assert code == 1
    assert err.startswith(
        "error: broken.json:3:3: duplicate key 'repeats' (first defined at line 2) "
    )
    assert "hint: remove one of the two entries" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(workdir: Path) -> None:
    code, _, err = invoke("validate", "broken.json", "--schema", SCHEMA, "--debug")
    assert code == 1
    assert "Traceback" in err
    assert "DuplicateKeyError" in err
    assert "error: broken.json:3:3: duplicate key 'repeats'" in err


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("no_colon_here", "--schema must look like 'package.module:ClassName'"),
        ("no_such_module_xyz:Settings", "cannot import 'no_such_module_xyz'"),
        # ':X:' is a rich emoji code; the spec must come out as typed.
        ("no_such_module_xyz:X", "--schema no_such_module_xyz:X: cannot import"),
        (f"{SCHEMA_MODULE}:Missing", f"{SCHEMA_MODULE} has no 'Missing'"),
        (f"{SCHEMA_MODULE}:NOT_A_CLASS", "NOT_A_CLASS is not a subclass of as_config.AsSettings"),
        (f"{SCHEMA_MODULE}:Store", "Store is not a subclass of as_config.AsSettings"),
    ],
)
def test_bad_schema_is_a_usage_error(workdir: Path, schema: str, message: str) -> None:
    code, _, err = invoke("validate", "good.yaml", "--schema", schema)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert "hint: pass --schema package.module:ClassName" in err


def test_missing_schema_option_is_a_usage_error(workdir: Path) -> None:
    code, _, err = invoke("validate", "good.yaml")
    assert code == 2
    assert "--schema" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope.yaml", "--schema", SCHEMA], "config file not found: nope.yaml"),
        (["validate", "good.ini", "--schema", SCHEMA], "unsupported config format '.ini'"),
        (["validate", ".", "--schema", SCHEMA], "it is a directory, not a file"),
        (["validate", "good.yaml", "--schema", SCHEMA, "-p", "prod"], "profile 'prod'"),
        (["show"], "show needs a FILE, a --schema, or both"),
    ],
)
def test_unusable_arguments_are_usage_errors(workdir: Path, args: list[str], message: str) -> None:
    code, _, err = invoke(*args)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err


def test_no_arguments_shows_help() -> None:
    result = CliRunner().invoke(app, [])
    assert "validate" in result.output
    assert "show" in result.output


def test_show_with_schema_masks_secrets_and_includes_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_CFGCLI__STORE__KEEP_LAST", "9")
    code, out, err = invoke("show", "good.yaml", "--schema", SCHEMA, "--profile", "ci")
    assert code == 0, err
    assert out == ("repeats: 1\ntoken: '**********'\nstore:\n  results_dir: out\n  keep_last: 9\n")
    assert "s3cr3t" not in out


@pytest.mark.parametrize("fmt", ["json", "toml", "yaml"])
def test_show_format(workdir: Path, fmt: str) -> None:
    code, out, _ = invoke("show", "good.yaml", "--schema", SCHEMA, "--format", fmt)
    assert code == 0
    (workdir / f"shown.{fmt}").write_text(out)
    data = as_config.read_config_file(workdir / f"shown.{fmt}")
    assert data["store"] == {"results_dir": "out", "keep_last": 3}
    assert data["token"] == "**********"


def test_show_json_output_is_json(workdir: Path) -> None:
    _, out, _ = invoke("show", "good.yaml", "-s", SCHEMA, "-f", "json")
    assert json.loads(out)["repeats"] == 3


def test_show_without_a_file_uses_environment_and_defaults(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_CFGCLI__REPEATS", "4")
    code, out, _ = invoke("show", "--schema", SCHEMA)
    assert code == 0
    assert out.startswith("repeats: 4\n")


def test_show_without_schema_prints_the_merged_mapping(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_RAW__STORE__KEEP_LAST", "7")
    monkeypatch.setenv("AS_RAW__EXTRA_KEY", "x")
    code, out, _ = invoke(
        "show", "good.yaml", "--profile", "ci", "--env-prefix", "AS_RAW__", "--format", "json"
    )
    assert code == 0
    assert json.loads(out) == {
        "repeats": 1,
        "token": "s3cr3t-value",
        "store": {"results_dir": "out", "keep_last": "7"},
        "extra_key": "x",
    }


def test_show_without_schema_ignores_environment_without_prefix(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_CFGCLI__REPEATS", "4")
    code, out, _ = invoke("show", "good.yaml")
    assert code == 0
    assert out.startswith("repeats: 3\n")


def test_show_invalid_config_exits_1(workdir: Path) -> None:
    code, out, err = invoke("show", "invalid.yaml", "--schema", SCHEMA)
    assert code == 1
    assert out == ""
    assert "store.keep_lst: unknown key" in err


def test_show_bad_format_is_a_usage_error(workdir: Path) -> None:
    code, _, err = invoke("show", "good.yaml", "--format", "xml")
    assert code == 2
    assert "xml" in err


def test_output_with_brackets_is_not_read_as_markup(workdir: Path) -> None:
    (workdir / "brackets.yaml").write_text("name: '[bold]x[/bold]'\n")
    code, out, _ = invoke("show", "brackets.yaml")
    assert code == 0
    assert out == "name: '[bold]x[/bold]'\n"


def test_python_dash_m_and_console_script(workdir: Path) -> None:
    module = subprocess.run(
        [sys.executable, "-m", "as_config", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 0
    assert module.stdout == f"as-config {as_config.__version__}\n"
    script = Path(sys.executable).parent / "as-config"
    result = subprocess.run(
        [str(script), "validate", "invalid.yaml", "--schema", SCHEMA],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )
    # The console script finds the schema module in the working directory.
    assert result.returncode == 1, result.stderr
    assert "error: invalid settings for CliSettings" in result.stderr
    assert "Traceback" not in result.stderr
