"""The dashboard uses the packages only through their public names, and exports its own."""

from __future__ import annotations

import ast
from pathlib import Path

import as_dashboard

SOURCE = Path(as_dashboard.__file__).resolve().parent


def private_imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [alias.name for alias in node.names]
            module = node.module
        elif isinstance(node, ast.Import):
            names = []
            module = ""
            for alias in node.names:
                if alias.name.startswith("as_") and any(
                    part.startswith("_") for part in alias.name.split(".")
                ):
                    found.append(alias.name)
            continue
        else:
            continue
        if not module.startswith("as_") or module.split(".")[0] == "as_dashboard":
            continue
        if any(part.startswith("_") for part in module.split(".")):
            found.append(module)
        found += [f"{module}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    return found


def test_no_private_name_of_a_package_is_imported() -> None:
    found = {
        str(path.relative_to(SOURCE)): private_imports(ast.parse(path.read_text()))
        for path in sorted(SOURCE.glob("*.py"))
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_rule_sees_each_form_of_private_import() -> None:
    code = (
        "from as_bench.compare._compare import x\n"
        "from as_bench.compare import _hidden\n"
        "import as_bench._memory_text\n"
        "from as_bench.compare import compare_results\n"
        "from as_dashboard._version import __version__\n"
    )
    assert private_imports(ast.parse(code)) == [
        "as_bench.compare._compare",
        "as_bench.compare._hidden",
        "as_bench._memory_text",
    ]


def test_the_version_is_public() -> None:
    assert as_dashboard.__version__ == "0.1.0"
    assert "__version__" in as_dashboard.__all__
