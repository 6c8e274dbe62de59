"""Check that each package works on its own, as `uv add <package>` in another repo would.

The apps under ``apps/`` are checked the same way (their dependencies declared, their
console scripts answering ``--help``).

For each package: build its wheel without workspace sources (`uv build --no-sources`),
install it with the sibling wheels it declares into a fresh virtual environment outside the
repository, and then, in that environment,

* import it and compare ``__version__`` with the wheel's version,
* check that no workspace package it does not declare was installed,
* run ``--help`` of every console script it ships and of ``python -m <import_name>``.

Usage::

    uv run python scripts/check_isolation.py                 # every package
    uv run python scripts/check_isolation.py -p as-config    # one package (and its siblings)
    uv run python scripts/check_isolation.py --keep /tmp/iso # keep the venvs for inspection

Exit status: 0 when every package passes, 1 when any fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import ROOT, Member, members, sibling_closure

_PROBE = """
import importlib, importlib.metadata as md, json, sys
mod = importlib.import_module(sys.argv[1])
names = sorted(d.metadata["Name"].lower().replace("_", "-") for d in md.distributions())
print(json.dumps({"version": mod.__version__, "file": mod.__file__, "dists": names}))
"""


@dataclass
class Outcome:
    """What the check found for one package."""

    dist: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the package passed every check."""
        return not self.problems


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("check_isolation: uv is not on PATH; install it with `pip install uv`")
    return uv


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def build_wheels(dists: list[str], out: Path) -> dict[str, Path]:
    """Build each package's wheel with workspace sources ignored; return wheel paths."""
    out.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for dist in dists:
        proc = _run(
            [
                _uv(),
                "build",
                "--package",
                dist,
                "--no-sources",
                "--wheel",
                "--out-dir",
                str(out),
                "--quiet",
            ],
            ROOT,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"building {dist} failed:\n{proc.stderr.strip()}")
    for dist in dists:
        prefix = dist.replace("-", "_") + "-"
        matches = sorted(out.glob(f"{prefix}*.whl"))
        if not matches:
            raise RuntimeError(f"building {dist} left no wheel in {out}")
        wheels[dist] = matches[-1]
    return wheels


def make_venv(
    dist: str, wheels: dict[str, Path], all_members: dict[str, Member], venvs: Path
) -> Path:
    """Create a fresh venv holding ``dist``, the sibling wheels it needs and their deps."""
    venv = venvs / dist
    if venv.exists():
        shutil.rmtree(venv)
    # cwd is outside the repo so that uv finds no workspace to take sources from.
    proc = _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], venvs)
    if proc.returncode != 0:
        raise RuntimeError(f"creating the venv for {dist} failed:\n{proc.stderr.strip()}")
    python = venv / "bin" / "python"
    needed = [str(wheels[name]) for name in sibling_closure(dist, all_members)]
    proc = _run([_uv(), "pip", "install", "--quiet", "--python", str(python), *needed], venvs)
    if proc.returncode != 0:
        raise RuntimeError(f"installing {dist} into a fresh venv failed:\n{proc.stderr.strip()}")
    return venv


def check_member(member: Member, venv: Path, all_members: dict[str, Member]) -> list[str]:
    """Run the import, dependency and CLI checks inside ``venv``; return the problems."""
    problems: list[str] = []
    python = venv / "bin" / "python"
    # Run from an empty folder so that nothing from the repository can be imported.
    scratch = venv / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    proc = _run([str(python), "-c", _PROBE, member.import_name], scratch, env)
    if proc.returncode != 0:
        return [f"import {member.import_name} failed:\n{proc.stderr.strip()}"]
    info = json.loads(proc.stdout)
    if info["version"] != member.version:
        problems.append(f"__version__ is {info['version']!r}, the wheel says {member.version!r}")
    if not Path(info["file"]).resolve().is_relative_to(venv.resolve()):
        problems.append(f"{member.import_name} was imported from {info['file']}, not from the venv")
    allowed = set(sibling_closure(member.dist, all_members))
    stray = sorted(set(info["dists"]) & set(all_members) - allowed)
    if stray:
        problems.append(
            f"workspace packages it does not declare were installed: {', '.join(stray)}"
        )
    commands = [[str(venv / "bin" / script), "--help"] for script in member.scripts]
    if (member.path / "src" / member.import_name / "__main__.py").exists():
        commands.append([str(python), "-m", member.import_name, "--help"])
    for cmd in commands:
        proc = _run(cmd, scratch, env)
        if proc.returncode != 0:
            shown = " ".join(Path(cmd[0]).name if i == 0 else part for i, part in enumerate(cmd))
            problems.append(f"`{shown}` exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the isolation check; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-p", "--package", action="append", default=[], help="check only this package (repeatable)"
    )
    parser.add_argument(
        "--keep", type=Path, help="build and keep the wheels and venvs in this folder"
    )
    args = parser.parse_args(argv)

    # The published packages and the apps (each a workspace member with console scripts).
    all_members = {**members(), **members(ROOT / "apps")}
    chosen = args.package or list(all_members)
    unknown = [name for name in chosen if name not in all_members]
    if unknown:
        parser.error(f"unknown package(s) {', '.join(unknown)}; known: {', '.join(all_members)}")

    with tempfile.TemporaryDirectory(prefix="as-isolation-") as tmp:
        base = args.keep.resolve() if args.keep else Path(tmp)
        needed = sorted({name for dist in chosen for name in sibling_closure(dist, all_members)})
        print(f"building {len(needed)} wheel(s) without workspace sources into {base / 'dist'}")
        try:
            wheels = build_wheels(needed, base / "dist")
        except RuntimeError as exc:
            print(f"FAIL {exc}")
            return 1
        venvs = base / "venvs"
        venvs.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for dist in chosen:
            outcome = Outcome(dist)
            start = time.perf_counter()
            try:
                venv = make_venv(dist, wheels, all_members, venvs)
                outcome.problems = check_member(all_members[dist], venv, all_members)
            except RuntimeError as exc:
                outcome.problems = [str(exc)]
            outcome.seconds = time.perf_counter() - start
            outcomes.append(outcome)
            status = "ok  " if outcome.ok else "FAIL"
            print(f"{status} {dist:<12} {outcome.seconds:5.1f}s  {wheels[dist].name}")
            for problem in outcome.problems:
                print("     - " + problem.replace("\n", "\n       "))
    failed = [o.dist for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
