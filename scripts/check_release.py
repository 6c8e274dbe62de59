"""Check that a package's version, its CHANGELOG and (for a release) its tag agree.

A release tag has the form ``<dist>==<version>`` (``as-bench==0.3.0``) and releases that
one package. The version lives in one place, ``src/<import_name>/_version.py``; the top
entry of the package's CHANGELOG.md must be that version.

Usage::

    python scripts/check_release.py --all                # every package (run by CI)
    python scripts/check_release.py --tag as-bench==0.1.0  # a release tag

With ``--tag`` and ``--github-output FILE`` it appends ``package=`` and ``version=``
lines for the release workflow. Exit status: 0 when everything agrees, 1 when not.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import Member, members, normalise

_TAG_RE = re.compile(
    r"^(?P<dist>[a-z0-9][a-z0-9-]*)==(?P<version>\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?)$"
)
_ENTRY_RE = re.compile(
    r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?", re.MULTILINE
)


class ReleaseError(ValueError):
    """The version, CHANGELOG or tag of a package disagree."""


def parse_tag(tag: str) -> tuple[str, str]:
    """Split a release tag ``<dist>==<version>`` into its two parts."""
    tag = tag.removeprefix("refs/tags/")
    match = _TAG_RE.match(tag)
    if match is None:
        msg = f"tag {tag!r} is not of the form <dist>==<version>, e.g. as-bench==0.1.0"
        raise ReleaseError(msg)
    return normalise(match.group("dist")), match.group("version")


def changelog_top_version(changelog: Path) -> str:
    """The version of the first ``## [X.Y.Z]`` entry of a CHANGELOG, skipping Unreleased."""
    if not changelog.is_file():
        msg = f"{changelog}: missing"
        raise ReleaseError(msg)
    for match in _ENTRY_RE.finditer(changelog.read_text(encoding="utf-8")):
        if match.group("version").lower() != "unreleased":
            return match.group("version")
    msg = f"{changelog}: no '## [X.Y.Z] - YYYY-MM-DD' entry"
    raise ReleaseError(msg)


def check_member(member: Member) -> None:
    """Raise :class:`ReleaseError` when the CHANGELOG's top entry is not the version."""
    top = changelog_top_version(member.changelog)
    if top != member.version:
        msg = (
            f"{member.dist}: _version.py says {member.version} but the top entry of "
            f"{member.changelog.name} is {top}; add a '## [{member.version}]' entry"
        )
        raise ReleaseError(msg)


def check_tag(tag: str, all_members: dict[str, Member]) -> Member:
    """Check a release tag against the package it names; return that package."""
    dist, version = parse_tag(tag)
    if dist not in all_members:
        msg = f"tag {tag!r} names {dist!r}, which is not a package here ({', '.join(all_members)})"
        raise ReleaseError(msg)
    member = all_members[dist]
    if member.version != version:
        msg = f"tag {tag!r} says {version} but {dist}'s _version.py says {member.version}"
        raise ReleaseError(msg)
    check_member(member)
    return member


def main(argv: list[str] | None = None) -> int:
    """Run the check; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="check every package")
    group.add_argument("--tag", help="check a release tag <dist>==<version>")
    parser.add_argument("--github-output", type=Path, help="append package= and version= here")
    args = parser.parse_args(argv)
    all_members = members()
    try:
        if args.tag:
            member = check_tag(args.tag, all_members)
            print(f"ok {member.dist} {member.version}")
            if args.github_output:
                with args.github_output.open("a", encoding="utf-8") as out:
                    out.write(f"package={member.dist}\nversion={member.version}\n")
                    out.write(f"import_name={member.import_name}\n")
            return 0
        errors = []
        for member in all_members.values():
            try:
                check_member(member)
            except ReleaseError as exc:
                errors.append(str(exc))
            else:
                print(f"ok {member.dist} {member.version}")
        for error in errors:
            print(f"FAIL {error}")
        return 1 if errors else 0
    except ReleaseError as exc:
        print(f"FAIL {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
