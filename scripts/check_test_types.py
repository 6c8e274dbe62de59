"""Type-check every tests folder under mypy strict, one mypy run per folder.

Test folders have no ``__init__.py`` and each has its own ``conftest.py``; one mypy run
over all of them would see several top-level modules named ``conftest`` and stop. So each
``packages/*/tests`` and ``apps/*/tests`` folder and the root ``tests/`` folder is checked
on its own, with the root ``pyproject.toml``'s settings (strict), as the source already is
by ``mypy``.

Usage::

    uv run python scripts/check_test_types.py                       # every tests folder
    uv run python scripts/check_test_types.py packages/as-bench/tests  # only these folders

Exit status: 0 when every folder type-checks, 1 when any fails, 2 for a folder that does
not exist.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Runs mypy over one folder (a path relative to the root) and returns its exit status.
Runner = Callable[[str], int]


def find_test_folders(root: Path = ROOT) -> list[Path]:
    """Every tests folder of the workspace: each package's, each app's, then the root one."""
    folders = sorted(path for path in (root / "packages").glob("*/tests") if path.is_dir())
    folders += sorted(path for path in (root / "apps").glob("*/tests") if path.is_dir())
    if (root / "tests").is_dir():
        folders.append(root / "tests")
    return folders


def run_mypy(folder: str) -> int:
    """Run mypy over ``folder`` from the workspace root; its report goes to our stdout."""
    done = subprocess.run([sys.executable, "-m", "mypy", folder], cwd=ROOT, check=False)
    return done.returncode


def _relative(path: Path) -> str:
    """``path`` relative to the root where it lies under it (mypy then names files so)."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)


def main(argv: Sequence[str] | None = None, run: Runner = run_mypy) -> int:
    """Check the folders named in ``argv`` (every tests folder when none) and report."""
    parser = argparse.ArgumentParser(
        description="Type-check every tests folder under mypy strict, one mypy run per folder."
    )
    parser.add_argument(
        "folders", nargs="*", type=Path, help="tests folders to check (default: all of them)"
    )
    args = parser.parse_args(argv)
    chosen: list[Path] = args.folders or find_test_folders()
    missing = [str(path) for path in chosen if not path.is_dir()]
    if missing:
        print(f"check_test_types: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2

    failed: list[str] = []
    for path in chosen:
        folder = _relative(path)
        print(f"== mypy {folder}", flush=True)
        start = time.monotonic()
        code = run(folder)
        verdict = "ok" if code == 0 else f"FAILED (mypy exit status {code})"
        print(f"== {folder}: {verdict} in {time.monotonic() - start:.1f}s", flush=True)
        if code != 0:
            failed.append(folder)

    passed = len(chosen) - len(failed)
    print(f"check_test_types: {passed} passed, {len(failed)} failed")
    for folder in failed:
        print(f"  failed: {folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
