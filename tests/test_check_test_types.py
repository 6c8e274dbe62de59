"""scripts/check_test_types.py: one mypy run per tests folder, failures named, exit status.

mypy itself is replaced by a recorder here, so these tests run in milliseconds; the real
runs are the script's own job (`make typecheck`).
"""

from __future__ import annotations

from pathlib import Path

import check_test_types
import pytest

ROOT = check_test_types.ROOT


def test_every_tests_folder_is_found_packages_first_then_apps_then_the_root_one() -> None:
    folders = check_test_types.find_test_folders()
    assert folders[-1] == ROOT / "tests"
    packages = [path for path in folders if path.parent.parent == ROOT / "packages"]
    apps = [path for path in folders if path.parent.parent == ROOT / "apps"]
    assert folders[:-1] == packages + apps
    assert packages == sorted(packages) and apps == sorted(apps)
    assert ROOT / "packages" / "as-bench" / "tests" in packages
    assert ROOT / "packages" / "as-deploy" / "tests" in packages
    assert ROOT / "apps" / "dashboard" / "tests" in apps


def test_each_folder_is_checked_on_its_own_and_failures_are_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[str] = []

    def fake_mypy(folder: str) -> int:
        seen.append(folder)
        return 1 if folder == "packages/as-deploy/tests" else 0

    assert check_test_types.main([], run=fake_mypy) == 1
    expected = [p.relative_to(ROOT).as_posix() for p in check_test_types.find_test_folders()]
    assert seen == expected
    out = capsys.readouterr().out
    assert "== packages/as-deploy/tests: FAILED (mypy exit status 1)" in out
    assert "== tests: ok" in out
    assert f"{len(expected) - 1} passed, 1 failed" in out
    assert "  failed: packages/as-deploy/tests" in out


def test_named_folders_only_and_success_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def fake_mypy(folder: str) -> int:
        seen.append(folder)
        return 0

    assert check_test_types.main([str(ROOT / "tests")], run=fake_mypy) == 0
    assert seen == ["tests"]
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_a_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(folder: str) -> int:
        raise AssertionError(f"mypy must not run, got {folder}")

    assert check_test_types.main([str(tmp_path / "nowhere")], run=never) == 2
    assert "not a folder" in capsys.readouterr().err
