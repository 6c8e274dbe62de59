"""The workspace's layout and dependency rules, as DESIGN.md states them."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _workspace import PACKAGES_DIR, ROOT, members

# Lower never imports higher (DESIGN.md): a package may depend on lower levels only, and
# as-optimize and as-deploy never reach into each other.
LEVEL = {
    "as-logging": 0,
    "as-config": 0,
    "as-template": 1,
    "as-bench": 1,
    "as-optimize": 2,
    "as-deploy": 2,
}
EXPECTED = set(LEVEL)
MEMBERS = members()


def _pyproject(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))


def test_root_is_virtual_with_globbed_members() -> None:
    root = _pyproject(ROOT)
    assert "project" not in root, "the workspace root must stay virtual"
    assert root["tool"]["uv"]["workspace"]["members"] == ["packages/*", "apps/*"]
    assert (ROOT / "uv.lock").is_file()


def test_the_six_packages_exist() -> None:
    assert set(MEMBERS) == EXPECTED


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_package_layout(dist: str) -> None:
    member = MEMBERS[dist]
    src = member.path / "src" / member.import_name
    for required in ("README.md", "CHANGELOG.md", "pyproject.toml"):
        assert (member.path / required).is_file(), f"{dist} lacks {required}"
    assert (src / "py.typed").is_file()
    assert list((member.path / "tests").glob("test_*.py")), f"{dist} has no tests"
    assert re.fullmatch(r"\d+\.\d+\.\d+", member.version)
    project = _pyproject(member.path)["project"]
    assert project["dynamic"] == ["version"], "the version must live in _version.py only"
    assert project["requires-python"] == ">=3.11"
    tree = ast.parse((src / "__init__.py").read_text(encoding="utf-8"))
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert "__all__" in assigned, f"{dist}'s __init__ must list its public names in __all__"


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_siblings_are_ranges_with_workspace_sources(dist: str) -> None:
    data = _pyproject(MEMBERS[dist].path)
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    for req in data["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", req).group(0)
        if name not in EXPECTED:
            continue
        assert ">=" in req and "<" in req.replace("<=", ""), (
            f"{dist}: {req!r} must be a range, not a pin"
        )
        assert sources.get(name) == {"workspace": True}, (
            f"{dist}: {name} needs {{ workspace = true }}"
        )
        assert LEVEL[name] < LEVEL[dist], f"{dist} may not depend on {name} (DESIGN.md direction)"


def _imported_siblings(src: Path) -> set[str]:
    found = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top.startswith("as_"):
                    found.add(top.replace("_", "-"))
    return found


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_every_sibling_import_is_declared(dist: str) -> None:
    member = MEMBERS[dist]
    used = _imported_siblings(member.path / "src") - {dist}
    undeclared = used - set(member.requires)
    assert not undeclared, f"{dist} imports {sorted(undeclared)} without declaring them"


def test_packages_dir_holds_only_members() -> None:
    stray = [
        p.name for p in PACKAGES_DIR.iterdir() if p.is_dir() and not (p / "pyproject.toml").exists()
    ]
    assert not stray
