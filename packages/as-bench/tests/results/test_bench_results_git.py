"""git_info: commit, dirty flag and branch of a real repository; None outside one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from as_bench.results import git_info

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A user's global git config (hooks, signing) must not change what the test sees.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "trunk")
    (repo / "model.py").write_text("x = 1\n")
    _git(repo, "add", "model.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_clean_then_dirty_checkout(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    info = git_info(repo)
    assert info is not None
    assert (info.commit, info.dirty, info.branch) == (head, False, "trunk")

    # Untracked files (results, caches) don't make a checkout dirty; edits do.
    (repo / "results.json").write_text("{}")
    assert git_info(repo / "model.py") == info
    (repo / "model.py").write_text("x = 2\n")
    dirty = git_info(repo)
    assert dirty is not None and dirty.dirty and dirty.commit == head


def test_detached_head_has_no_branch(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    info = git_info(repo)
    assert info is not None and info.branch is None


def test_current_directory_is_the_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert git_info() == git_info(repo)


def test_none_outside_a_repository_or_before_the_first_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stop git from finding a repository above tmp_path (if the tests run inside one).
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_info(outside) is None
    assert git_info(tmp_path / "does-not-exist") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert git_info(empty) is None


def test_none_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_info(tmp_path) is None


def test_none_when_git_hangs(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "git"
    script.write_text("#!/bin/sh\nexec sleep 5\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    assert git_info(repo, timeout=0.2) is None
