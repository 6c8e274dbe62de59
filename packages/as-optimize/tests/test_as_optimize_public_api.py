"""The public surface of as_optimize: exactly what ``__all__`` promises, nothing pretending."""

import importlib.metadata
import re
import subprocess
import sys

import as_optimize


def test_all_is_exact_and_every_name_resolves() -> None:
    modules = {"cli", "compress", "exceptions", "training"}
    public = {name for name in dir(as_optimize) if not name.startswith("_")} - modules
    assert set(as_optimize.__all__) == public | {"__version__"}
    for name in as_optimize.__all__:
        assert getattr(as_optimize, name) is not None


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_optimize.__version__)
    assert importlib.metadata.version("as-optimize") == as_optimize.__version__


def test_base_error_is_an_exception() -> None:
    assert issubclass(as_optimize.AsOptimizeError, Exception)


def test_importing_the_package_and_the_training_module_imports_no_torch() -> None:
    code = (
        "import sys, as_optimize, as_optimize.training; "
        "print(sorted(m for m in ('torch', 'safetensors') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_training_names_resolve() -> None:
    import as_optimize.training as training

    for name in training.__all__:
        assert getattr(training, name) is not None
    assert issubclass(as_optimize.MissingExtraError, ImportError)


def test_importing_the_compression_api_and_the_cli_imports_no_torch_or_onnxruntime() -> None:
    code = (
        "import sys, as_optimize.compress, as_optimize.cli; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_compression_names_resolve() -> None:
    import as_optimize.compress as compress

    for name in compress.__all__:
        assert getattr(compress, name) is not None
    assert issubclass(as_optimize.CompressionInputError, ValueError)
    assert issubclass(as_optimize.CompressionError, as_optimize.AsOptimizeError)
