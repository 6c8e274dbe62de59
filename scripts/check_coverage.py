"""Check each package's line coverage against its floor.

Reads the JSON report that coverage.py (through pytest-cov) writes, adds up the lines of
every file under ``packages/<package>/src/`` per package, and compares each package's
line coverage with its floor. The floors live in one place, the root ``pyproject.toml``::

    [tool.as-toolkit.coverage]
    default = 80            # for a package without a floor of its own
    [tool.as-toolkit.coverage.floors]
    as-config = 90

A package with no measured lines (an empty placeholder) is listed and not judged.

Usage::

    uv run pytest --cov --cov-report=json:build/coverage.json
    uv run python scripts/check_coverage.py build/coverage.json

``make test-ci`` runs the same check inside pytest (``--coverage-floors``), so that the
figures come before pytest's summary line.

Exit status: 0 when every package meets its floor, 1 when one does not, 2 when the
report or the floors cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_RE = re.compile(r"(?:^|/)packages/([^/]+)/src/")


@dataclass(frozen=True)
class Floors:
    """The coverage floors, in percent of lines."""

    default: float
    per_package: dict[str, float]

    def for_package(self, package: str) -> float:
        """The floor of ``package`` (the default when it has none of its own)."""
        return self.per_package.get(package, self.default)


@dataclass(frozen=True)
class PackageCoverage:
    """Lines of one package's source: how many there are and how many ran."""

    package: str
    statements: int
    covered: int

    @property
    def percent(self) -> float:
        """Line coverage in percent (100 when the package has no lines)."""
        return 100.0 * self.covered / self.statements if self.statements else 100.0


def load_floors(pyproject: Path) -> Floors:
    """Read ``[tool.as-toolkit.coverage]`` from ``pyproject``."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    table = data.get("tool", {}).get("as-toolkit", {}).get("coverage")
    if not isinstance(table, dict):
        raise ValueError(f"{pyproject}: no [tool.as-toolkit.coverage] table")
    floors = table.get("floors", {})
    if not isinstance(floors, dict):
        raise ValueError(f"{pyproject}: [tool.as-toolkit.coverage.floors] must be a table")
    return Floors(
        default=float(table.get("default", 0)),
        per_package={str(name): float(value) for name, value in floors.items()},
    )


def per_package(report: dict[str, Any]) -> dict[str, PackageCoverage]:
    """Sum a coverage.py JSON report's files by the package whose ``src`` holds them."""
    totals: dict[str, list[int]] = {}
    files = report.get("files")
    if not isinstance(files, dict):
        raise ValueError("not a coverage.py JSON report: no 'files' mapping")
    for name, entry in files.items():
        match = _PACKAGE_RE.search(name.replace("\\", "/"))
        if match is None:
            continue
        summary = entry["summary"]
        counts = totals.setdefault(match.group(1), [0, 0])
        counts[0] += int(summary["num_statements"])
        counts[1] += int(summary["covered_lines"])
    return {
        package: PackageCoverage(package, statements, covered)
        for package, (statements, covered) in sorted(totals.items())
    }


def check(coverage: dict[str, PackageCoverage], floors: Floors) -> tuple[list[str], bool]:
    """One line per package, and whether every package meets its floor."""
    lines = []
    ok = True
    for name in sorted(set(coverage) | set(floors.per_package)):
        found = coverage.get(name)
        floor = floors.for_package(name)
        if found is None:
            lines.append(f"FAIL {name:<12} no lines measured (floor {floor:.0f}%)")
            ok = False
        elif found.statements == 0:
            lines.append(f"ok   {name:<12} no code yet")
        elif found.percent + 1e-9 < floor:
            lines.append(
                f"FAIL {name:<12} {found.percent:5.1f}% of {found.statements} lines, "
                f"under its floor of {floor:.0f}%"
            )
            ok = False
        else:
            lines.append(
                f"ok   {name:<12} {found.percent:5.1f}% of {found.statements} lines "
                f"(floor {floor:.0f}%)"
            )
    return lines, ok


def check_file(report_path: Path, floors: Floors) -> tuple[list[str], bool]:
    """Read the JSON report at ``report_path`` and :func:`check` it."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    if not isinstance(report, dict):
        raise ValueError(f"{report_path}: not a coverage.py JSON report")
    return check(per_package(report), floors)


def main(argv: list[str] | None = None) -> int:
    """Check the report; see the module docstring."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("report", type=Path, help="coverage.py JSON report")
    parser.add_argument(
        "--pyproject",
        type=Path,
        default=ROOT / "pyproject.toml",
        help="where [tool.as-toolkit.coverage] is (default: the root pyproject.toml)",
    )
    args = parser.parse_args(argv)
    try:
        floors = load_floors(args.pyproject)
        lines, ok = check_file(args.report, floors)
    except (OSError, ValueError, KeyError) as exc:
        print(f"check_coverage: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print("every package meets its coverage floor" if ok else "coverage under a floor")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
