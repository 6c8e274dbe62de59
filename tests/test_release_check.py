"""The release check agrees with the tag, version and CHANGELOG rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import check_release
import pytest
from _workspace import PACKAGES_DIR, members


def test_every_package_changelog_matches_its_version() -> None:
    assert check_release.main(["--all"]) == 0


def test_tag_for_the_current_version_passes(tmp_path: Path) -> None:
    member = members()["as-config"]
    out = tmp_path / "gh_output"
    assert (
        check_release.main(["--tag", f"as-config=={member.version}", "--github-output", str(out)])
        == 0
    )
    assert f"package=as-config\nversion={member.version}\n" in out.read_text()


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("as-bench-0.1.0", "not of the form <dist>==<version>"),
        ("as-bench==0.1", "not of the form"),
        ("as-nothing==0.1.0", "'as-nothing', which is not a package here"),
        ("as-bench==9.9.9", "says 9.9.9 but as-bench's _version.py says"),
    ],
)
def test_bad_tags_are_refused(tag: str, message: str) -> None:
    with pytest.raises(
        check_release.ReleaseError, match=message.replace("(", r"\(").replace("|", r"\|")
    ):
        check_release.check_tag(tag, members())


def test_changelog_out_of_step_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "packages" / "as-logging"
    shutil.copytree(PACKAGES_DIR / "as-logging", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    changelog = pkg / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [Unreleased]\n\n## [0.0.9] - 2026-01-01\n- old\n")
    member = members(tmp_path / "packages")["as-logging"]
    with pytest.raises(check_release.ReleaseError, match=r"top entry of CHANGELOG.md is 0.0.9"):
        check_release.check_member(member)
