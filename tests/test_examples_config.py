"""The README's as-config example commands do what the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "config"
SCHEMA = "example_settings:BenchSettings"


def _as_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "as_config", *args],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_example_file_is_valid() -> None:
    proc = _as_config("validate", "bench.yaml", "--schema", SCHEMA)
    assert proc.returncode == 0, proc.stderr
    assert "valid: bench.yaml for BenchSettings" in proc.stdout


def test_show_applies_profile_and_environment_and_masks_the_secret() -> None:
    proc = _as_config(
        "show",
        "bench.yaml",
        "--schema",
        SCHEMA,
        "--profile",
        "ci",
        "--format",
        "json",
        env={"AS_EXAMPLE__STORE__RESULTS_DIR": "/tmp/results"},
    )
    assert proc.returncode == 0, proc.stderr
    assert '"max_time_s": 1.0' in proc.stdout
    assert '"results_dir": "/tmp/results"' in proc.stdout
    assert "not-a-real-token" not in proc.stdout
    assert "**********" in proc.stdout


def test_broken_example_reports_every_problem_with_its_line() -> None:
    proc = _as_config("validate", "broken.yaml", "--schema", SCHEMA)
    assert proc.returncode == 1
    assert "3 problems" in proc.stderr
    assert "max_time_s" in proc.stderr and "[broken.yaml:4:" in proc.stderr
    assert "store.results_dri: unknown key; did you mean 'results_dir'?" in proc.stderr
    assert "store.keep_last" in proc.stderr and "[broken.yaml:7:" in proc.stderr
