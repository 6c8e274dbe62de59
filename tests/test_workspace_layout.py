"""The workspace's layout and dependency rules, as docs/architecture.md states them."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _workspace import PACKAGES_DIR, ROOT, members

# Lower never imports higher (docs/architecture.md, "Layers"): a package may depend on
# lower levels only, and as-deploy never reaches into as-optimize (as-optimize uses
# as-deploy's public API in one extra, SIDEWAYS_EXTRA). as-core,
# the shared infrastructure, is the bottom.
LEVEL = {
    "as-core": 0,
    "as-logging": 1,
    "as-config": 1,
    "as-template": 2,
    "as-bench": 2,
    "as-optimize": 3,
    "as-deploy": 3,
}
EXPECTED = set(LEVEL)
# The one sideways edge (docs/architecture.md, "Layers"): as-optimize hands its winner to
# as-deploy's public export API, declared in this extra only; never the other way round.
SIDEWAYS_EXTRA = {("as-optimize", "as-deploy"): "deploy"}
MEMBERS = members()


def _pyproject(path: Path) -> dict[str, Any]:
    return tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))


def test_root_is_virtual_with_globbed_members() -> None:
    root = _pyproject(ROOT)
    assert "project" not in root, "the workspace root must stay virtual"
    assert root["tool"]["uv"]["workspace"]["members"] == ["packages/*", "apps/*"]
    assert (ROOT / "uv.lock").is_file()


def test_every_package_has_a_level() -> None:
    assert set(MEMBERS) == EXPECTED


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_package_layout(dist: str) -> None:
    member = MEMBERS[dist]
    src = member.path / "src" / member.import_name
    for required in ("README.md", "CHANGELOG.md", "pyproject.toml"):
        assert (member.path / required).is_file(), f"{dist} lacks {required}"
    assert (src / "py.typed").is_file()
    assert list((member.path / "tests").rglob("test_*.py")), f"{dist} has no tests"
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


def _dist_name(req: str) -> str:
    """The distribution a requirement names (``"as-core>=0.1,<0.2"`` -> ``"as-core"``)."""
    match = re.match(r"[A-Za-z0-9._-]+", req)
    assert match is not None, f"not a requirement: {req!r}"
    return match.group(0)


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_siblings_are_ranges_with_workspace_sources(dist: str) -> None:
    data = _pyproject(MEMBERS[dist].path)
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    for req in _requirements(data["project"]):
        name = _dist_name(req)
        if name not in EXPECTED or name == dist:  # `all = ["x[a,b]"]` names the package itself
            continue
        assert ">=" in req and "<" in req.replace("<=", ""), (
            f"{dist}: {req!r} must be a range, not a pin"
        )
        assert sources.get(name) == {"workspace": True}, (
            f"{dist}: {name} needs {{ workspace = true }}"
        )
        extra = SIDEWAYS_EXTRA.get((dist, name))
        if extra is not None:
            project = data["project"]
            holders = [
                key
                for key, reqs in project.get("optional-dependencies", {}).items()
                if any(_dist_name(r) == name for r in reqs)
            ]
            core = [r for r in project.get("dependencies", []) if _dist_name(r) == name]
            assert not core and holders == [extra], (
                f"{dist} may depend on {name} only in its {extra!r} extra, not in {holders}"
                f"{' and its dependencies' if core else ''}"
            )
            continue
        assert LEVEL[name] < LEVEL[dist], (
            f"{dist} may not depend on {name} (docs/architecture.md: lower never imports higher)"
        )


def _requirements(project: dict[str, Any]) -> list[str]:
    """The project's dependencies and those of every extra (a heavy feature's siblings)."""
    extras = project.get("optional-dependencies", {})
    return [*project.get("dependencies", []), *(req for reqs in extras.values() for req in reqs)]


def _declared_siblings(dist: str) -> set[str]:
    names = set()
    for req in _requirements(_pyproject(MEMBERS[dist].path)["project"]):
        name = _dist_name(req)
        if name in EXPECTED:
            names.add(name)
    return names


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
    # A sibling needed by an extra's code only (as-deploy's exporters need as-bench) is
    # declared in that extra; the code imports it lazily, behind the extra check.
    used = _imported_siblings(member.path / "src") - {dist}
    undeclared = used - _declared_siblings(dist)
    assert not undeclared, f"{dist} imports {sorted(undeclared)} without declaring them"


def test_packages_dir_holds_only_members() -> None:
    stray = [
        p.name for p in PACKAGES_DIR.iterdir() if p.is_dir() and not (p / "pyproject.toml").exists()
    ]
    assert not stray


def _private_part(dotted: str) -> str | None:
    """The first component of ``dotted`` that is private (``_x``, not ``__x__``), if any."""
    for part in dotted.split("."):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return part
    return None


IMPORT_NAMES = {member.import_name for member in MEMBERS.values()}


def _private_imports(source: str, own: str) -> list[tuple[int, str]]:
    """Imports in ``source`` that reach into another workspace package's private names.

    ``own`` is the importing package's import name: a package may use its own private
    modules. Caught: ``import as_x._y``, ``from as_x._y import z``, ``from as_x.y._z import
    w`` and ``from as_x import _y``. Returns ``(line, dotted name)`` pairs.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for dotted in targets:
            top = dotted.split(".")[0]
            if top in IMPORT_NAMES and top != own and _private_part(dotted):
                found.add((node.lineno, dotted))
    return sorted(found)


@pytest.mark.parametrize("dist", sorted(EXPECTED))
def test_no_package_imports_another_packages_private_names(dist: str) -> None:
    # Packages use each other only through public, documented names (docs/architecture.md,
    # "Contracts between packages"): a private module may change in any release.
    member = MEMBERS[dist]
    files = [*(member.path / "src").rglob("*.py"), *(member.path / "tests").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{line}: {dotted}"
        for path in sorted(files)
        for line, dotted in _private_imports(path.read_text(encoding="utf-8"), member.import_name)
    ]
    assert not found, f"{dist} imports private names of other packages:\n" + "\n".join(found)


def test_the_private_import_rule_catches_every_form() -> None:
    source = (
        "import as_bench._x\n"
        "from as_bench.backends._export import f\n"
        "from as_bench.workloads import _loader\n"
        "from as_bench import __version__, testing\n"
        "from as_deploy._cli import g\n"
        "import as_bench.results\n"
    )
    assert [dotted for _, dotted in _private_imports(source, "as_deploy")] == [
        "as_bench._x",
        "as_bench.backends._export",
        "as_bench.backends._export.f",
        "as_bench.workloads._loader",
    ]
