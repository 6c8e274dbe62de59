"""Facts about the workspace's members, read from their pyproject files.

Shared by the isolation check and the release check so that both agree on what a
package is, what it depends on inside the workspace, and where its version lives.

Only ``packages/`` holds published packages. The applications under ``apps/`` (the Gradio
demo, the Streamlit dashboard) are workspace members that are never published: they are
not :func:`members`, so neither the release check nor the isolation check judges them,
and their tests run in the workspace's environment with everything else.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"

_VERSION_RE = re.compile(r'^__version__\s*=\s*"([^"]+)"', re.MULTILINE)
_REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Member:
    """One published package of the workspace."""

    dist: str
    path: Path
    import_name: str
    version: str
    requires: tuple[str, ...]
    scripts: tuple[str, ...]

    @property
    def changelog(self) -> Path:
        """The package's CHANGELOG.md."""
        return self.path / "CHANGELOG.md"

    @property
    def wheel_prefix(self) -> str:
        """The start of the package's wheel file name (``as_bench-0.1.0-``)."""
        return f"{self.dist.replace('-', '_')}-{self.version}-"


def normalise(name: str) -> str:
    """Normalise a distribution name the way PEP 503 does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_version(version_file: Path) -> str:
    """Read ``__version__`` from a ``_version.py`` file without importing it."""
    match = _VERSION_RE.search(version_file.read_text(encoding="utf-8"))
    if match is None:
        msg = f'{version_file}: no line of the form __version__ = "X.Y.Z"'
        raise ValueError(msg)
    return match.group(1)


def load_member(path: Path) -> Member:
    """Read one member's pyproject.toml and version file."""
    data = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    version_path = data["tool"]["hatch"]["version"]["path"]
    import_name = Path(version_path).parent.name
    requires = []
    for req in project.get("dependencies", []):
        match = _REQ_NAME_RE.match(req)
        if match:
            requires.append(normalise(match.group(1)))
    return Member(
        dist=normalise(project["name"]),
        path=path,
        import_name=import_name,
        version=read_version(path / version_path),
        requires=tuple(requires),
        scripts=tuple(project.get("scripts", {})),
    )


def members(packages_dir: Path = PACKAGES_DIR) -> dict[str, Member]:
    """Every package under ``packages/``, by distribution name (not the apps under ``apps/``)."""
    found = {}
    for pyproject in sorted(packages_dir.glob("*/pyproject.toml")):
        member = load_member(pyproject.parent)
        found[member.dist] = member
    return found


def sibling_closure(dist: str, all_members: dict[str, Member]) -> list[str]:
    """``dist`` and every workspace package it needs, directly or not, in install order."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for req in all_members[name].requires:
            if req in all_members:
                visit(req)
        ordered.append(name)

    visit(dist)
    return ordered
