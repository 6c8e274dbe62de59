"""Each package installs and imports alone from its wheel, as `uv add` would give it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import _workspace
import check_isolation
import pytest


# The check over every package is a CI step of its own (`make isolation`); running it
# here as well would build and install every wheel twice per CI run. This test runs the
# check end to end on the smallest package.
@pytest.mark.network
@pytest.mark.slow
def test_the_isolation_check_passes_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_isolation.main(["--keep", str(tmp_path), "-p", "as-logging"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 passed, 0 failed" in out
    # The venv of as-logging holds no other workspace package.
    site = next((tmp_path / "venvs" / "as-logging").glob("lib/python*/site-packages"))
    assert not list(site.glob("as_bench*")) and not list(site.glob("as_config*"))


@pytest.mark.network
def test_a_broken_package_fails_the_check(tmp_path: Path) -> None:
    # Pretend as-template's version differs from what its wheel carries: the check must say so.
    members = _workspace.members()
    fake = dataclasses.replace(members["as-template"], version="9.9.9")
    wheels = check_isolation.build_wheels(["as-logging", "as-template"], tmp_path / "dist")
    (tmp_path / "venvs").mkdir()
    venv = check_isolation.make_venv("as-template", wheels, members, tmp_path / "venvs")
    problems = check_isolation.check_member(fake, venv, members)
    assert any("__version__ is '0.1.0', the wheel says '9.9.9'" in p for p in problems)
