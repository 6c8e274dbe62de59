"""The public surface of as_bench: exactly what ``__all__`` promises, and a light import."""

import importlib.metadata
import re
import subprocess
import sys
import types

import as_bench

HEAVY = ("torch", "onnxruntime", "coremltools", "mlx", "ai_edge_litert", "litert_torch", "polars")


def test_every_public_name_resolves_and_nothing_public_is_unlisted() -> None:
    for name in as_bench.__all__:
        assert getattr(as_bench, name) is not None, name
    # Everything public in the namespace, except submodules, is listed in __all__.
    public = {
        name
        for name in dir(as_bench)
        if not name.startswith("_") and not isinstance(getattr(as_bench, name), types.ModuleType)
    }
    assert public <= set(as_bench.__all__)


def test_probe_hardware_is_the_function_and_probe_the_subpackage() -> None:
    import as_bench.probe

    assert callable(as_bench.probe_hardware)
    assert isinstance(as_bench.probe, types.ModuleType)
    assert as_bench.probe_hardware is as_bench.probe.probe


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        as_bench.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_bench.__version__)
    assert importlib.metadata.version("as-bench") == as_bench.__version__


def test_import_as_bench_imports_no_heavy_library() -> None:
    code = (
        "import sys, as_bench, as_bench.cli, as_bench.engine, as_bench.devices, "
        "as_bench.backends, as_bench.workloads, as_bench.results, as_bench.suite; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_errors_derive_from_the_base_and_the_matching_builtin() -> None:
    assert issubclass(as_bench.MissingExtraError, ImportError)
    assert issubclass(as_bench.CorruptResultError, as_bench.ResultStoreError)
    assert issubclass(as_bench.OutputMismatchError, ValueError)
    for name in as_bench.__all__:
        value = getattr(as_bench, name)
        if isinstance(value, type) and name.endswith("Error"):
            assert issubclass(value, as_bench.AsBenchError)
