"""The README's "install from a clone" commands work, as written, in a fresh project.

Nothing is published on PyPI yet, so the README tells a user to build the wheels in the
clone and add them (or the package folders) to their own project. This test reads those
commands from the README's shell blocks, lays out a clone next to a fresh project as the
README assumes (``../as-toolkit``), runs each command and imports the package. It runs
offline (``UV_OFFLINE``): every dependency is in uv's cache after the workspace's
``uv sync``. ``pip install`` is run as ``uv pip install`` (same arguments), so no pip and
no network is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARK = "**Nothing is published on PyPI yet**"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv on PATH"),
]


def _install_commands() -> list[str]:
    """The shell lines of the README's install-from-a-clone part, comments dropped."""
    text = README.read_text(encoding="utf-8")
    start = text.index(MARK)
    end = text.index("### CPU-only PyTorch on Linux", start)
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text[start:end], re.S):
        lines += [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_PROJECT", "VIRTUAL_ENV"))}
    env.update(UV_OFFLINE="1", UV_NO_PROGRESS="1")
    env.pop("UV_FROZEN", None)
    env.pop("UV_LOCKED", None)
    return env


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # bash: the README's wheel paths are globs (as_core-*.whl), expanded by the shell.
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode == 0, f"{what}\n{done.stdout}\n{done.stderr}"


def test_the_readme_says_nothing_is_published_and_shows_the_clone_commands() -> None:
    commands = _install_commands()
    assert [c for c in commands if c.startswith("uv build")] == [
        "uv build --all-packages --no-sources --wheel -o dist"
    ]
    adds = [c for c in commands if c.startswith(("uv add", "pip install"))]
    assert len(adds) == 3
    for command in adds:  # as-config never comes without the as-core it needs
        assert "as-core" in command or "as_core" in command


def test_the_readme_install_commands_work_in_a_fresh_project(tmp_path: Path) -> None:
    commands = _install_commands()
    # The clone, as the README assumes it: ../as-toolkit next to the user's project. The
    # wheels are built from this checkout into the clone's dist/, not into the checkout.
    clone = tmp_path / "as-toolkit"
    clone.mkdir()
    for name in ("pyproject.toml", "packages", "apps"):  # the workspace's members
        (clone / name).symlink_to(ROOT / name)
    (build,) = [c for c in commands if c.startswith("uv build")]
    _ok(_sh(build.replace("-o dist", f"-o {clone / 'dist'}"), ROOT), build)
    # Every workspace member: the packages and the two apps (which are never published).
    assert sorted(p.name.split("-")[0] for p in (clone / "dist").glob("*.whl")) == [
        "as_bench",
        "as_config",
        "as_core",
        "as_dashboard",
        "as_demo",
        "as_deploy",
        "as_logging",
        "as_optimize",
        "as_template",
    ]

    for number, command in enumerate(c for c in commands if not c.startswith("uv build")):
        project = tmp_path / f"project{number}"
        project.mkdir()
        # --no-workspace: a stray pyproject.toml in a parent folder (tmp) is not ours.
        _ok(_sh("uv init --bare --no-workspace --name my-project -q", project), "uv init")
        if command.startswith("pip install"):
            _ok(_sh("uv venv -q", project), "uv venv")
            command = "uv " + command  # uv pip install, into the project's .venv
        _ok(_sh(command, project), command)
        probe = "import as_config, as_core; print(as_config.__version__, as_config.__file__)"
        done = _sh(f'uv run --no-sync python -c "{probe}"', project)
        _ok(done, f"import after {command}")
        version, location = done.stdout.split()
        assert version == "0.1.0" or re.fullmatch(r"\d+\.\d+\.\d+.*", version)
        if "--editable" in command:
            assert Path(location).resolve().is_relative_to(ROOT / "packages" / "as-config")
        else:
            assert ".venv" in location
