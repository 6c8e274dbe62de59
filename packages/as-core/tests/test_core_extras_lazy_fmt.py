"""Optional extras, lazy public names and human-readable figures."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import as_core
from as_core import MissingExtraError, first_missing, is_installed, lazy_exports, require
from as_core.fmt import format_bytes, format_rate, format_seconds


class ToolMissing(MissingExtraError):
    package = "as-tool"


def test_is_installed_looks_without_importing() -> None:
    assert is_installed("json")
    assert not is_installed("no_such_module_as_core_test")
    assert not is_installed("")
    assert first_missing(["json", "no_such_module_as_core_test", "also_missing"]) == (
        "no_such_module_as_core_test"
    )
    assert first_missing(("json", "os")) is None


def test_require_names_the_package_extra_and_command() -> None:
    with pytest.raises(ToolMissing) as info:
        require("no_such_module_as_core_test", "fast", error=ToolMissing, feature="going fast")
    error = info.value
    assert isinstance(error, ImportError)
    assert error.module == "no_such_module_as_core_test"
    assert error.extra == "fast"
    assert error.hint.startswith('uv add "as-tool[fast]"')
    assert "going fast needs it" in str(error)
    assert 'uv add "as-tool[fast]"' in str(error)


def test_require_keeps_the_real_error_of_a_broken_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_installed_pkg.py").write_text("import missing_dependency_of_it\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("half_installed_pkg", "x", error=ToolMissing)
    assert not isinstance(info.value, ToolMissing)
    assert info.value.name == "missing_dependency_of_it"


def test_lazy_exports_import_on_first_use_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("fake_pkg_lazy")
    monkeypatch.setitem(sys.modules, "fake_pkg_lazy", package)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    getattr_, dir_ = lazy_exports(
        "fake_pkg_lazy", {"rgb_to_hsv": "colorsys", "dumps": ("json", "dumps")}, ["other"]
    )
    vars(package)["__getattr__"] = getattr_
    assert "colorsys" not in sys.modules
    func = package.rgb_to_hsv
    assert "colorsys" in sys.modules
    assert vars(package)["rgb_to_hsv"] is func  # cached: __getattr__ not asked again
    assert package.dumps([1]) == "[1]"
    assert {"rgb_to_hsv", "dumps", "other"} <= set(dir_())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = package.nope


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0000123, "12.3 µs"), (1.5, "1.5 s"), (0.25, "250 ms"), (3e-9, "3 ns"), (None, "-")],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_bytes_and_rate() -> None:
    assert format_bytes(17179869184) == "16.0 GiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(None, missing="?") == "?"
    assert format_rate(12345.4) == "12,345/s"
    assert format_rate(float("nan")) == "-"


def test_import_as_core_is_light() -> None:
    import subprocess

    code = (
        "import sys, as_core; "
        "print(sorted(m for m in ('typer','rich','onnxruntime','click') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    assert as_core.__version__
