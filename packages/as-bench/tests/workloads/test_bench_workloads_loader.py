"""Loading a user's own model from ``pkg.module:factory``, and every way that can go wrong."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from as_bench.exceptions import WorkloadError
from as_bench.workloads import Workload, get_workload

torch = pytest.importorskip("torch", reason="factory workloads wrap torch modules")

_counter = itertools.count()


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Write a module into a folder on sys.path; returns a function source -> module name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"user_models_{next(_counter)}_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


_TUPLE_FACTORY = """
    import torch

    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Linear(4, 4)

        def forward(self, features, offsets):
            return self.scale(features) + offsets, features.sum(dim=1)

    def make():
        torch.manual_seed(0)
        example = (torch.arange(12.0).reshape(3, 4), torch.ones(3, 4))
        return TwoInputs(), example
"""


def test_factory_returning_module_and_example(plugin: Callable[[str], str]) -> None:
    name = plugin(_TUPLE_FACTORY)
    workload = get_workload(f"{name}:make")
    assert workload.name == f"{name}:make"
    assert workload.task == "regression"
    assert workload.dataset is None
    assert tuple(workload.input_names) == ("features", "offsets")  # from forward()
    assert tuple(workload.output_names) == ("output_0", "output_1")

    features, offsets = workload.inputs(7)
    assert features.shape == offsets.shape == (7, 4)
    assert features.dtype == np.float32
    example = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(features, example[[0, 1, 2, 0, 1, 2, 0]])  # cycled rows
    np.testing.assert_array_equal(workload.inputs(2)[0], example[:2])  # sliced

    first, second = workload.make_model(), workload.make_model()
    assert first is not second  # fresh copies of one snapshot: same weights
    assert not first.training
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[key])


def test_factory_returning_a_workload_is_used_as_is(plugin: Callable[[str], str]) -> None:
    name = plugin(
        """
        import numpy as np
        from as_bench.workloads import Workload

        WORKLOAD = Workload(
            name="mine",
            description="a user's workload",
            task="regression",
            make_model=lambda: None,
            make_inputs=lambda n: (np.zeros((n, 2), np.float32),),
        )

        class Factories:
            @staticmethod
            def build():
                return WORKLOAD
        """
    )
    workload = get_workload(f"{name}:Factories.build")  # a dotted attribute path works too
    assert isinstance(workload, Workload)
    assert workload is sys.modules[name].WORKLOAD


def test_module_in_the_current_directory_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cwd_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(_TUPLE_FACTORY))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    path_before = list(sys.path)
    assert get_workload(f"{name}:make").inputs(1)[0].shape == (1, 4)
    assert sys.path == path_before  # the current directory was only added for the import


@pytest.mark.parametrize(
    "spec",
    ["pkg.module:", ":factory", "pkg module:factory", "pkg.module:fac:tory", "pkg..mod:f", "a:1x"],
)
def test_malformed_spec(spec: str) -> None:
    with pytest.raises(WorkloadError, match=r"is not 'pkg.module:factory'"):
        get_workload(spec)


def test_module_not_found() -> None:
    with pytest.raises(WorkloadError, match=r"module 'as_bench_no_such_module' not found"):
        get_workload("as_bench_no_such_module:make")
    with pytest.raises(WorkloadError, match=r"module 'as_bench\.no_such_module' not found"):
        get_workload("as_bench.no_such_module:make")


def test_module_importing_something_missing(plugin: Callable[[str], str]) -> None:
    name = plugin("import as_bench_definitely_missing_dependency\n")
    with pytest.raises(
        WorkloadError,
        match=rf"module '{name}' was found but importing it failed: it imports "
        r"'as_bench_definitely_missing_dependency'",
    ):
        get_workload(f"{name}:make")


def test_module_raising_on_import(plugin: Callable[[str], str]) -> None:
    name = plugin("raise RuntimeError('no GPU configured')\n")
    with pytest.raises(WorkloadError, match=r"importing .* raised RuntimeError: no GPU configured"):
        get_workload(f"{name}:make")


def test_attribute_missing(plugin: Callable[[str], str]) -> None:
    name = plugin("def make():\n    pass\n")
    with pytest.raises(WorkloadError, match=rf"'{name}' \(.*\.py\) has no attribute 'build'"):
        get_workload(f"{name}:build")
    with pytest.raises(WorkloadError, match=rf"'{name}\.make' .* has no attribute 'inner'"):
        get_workload(f"{name}:make.inner")


def test_attribute_not_callable(plugin: Callable[[str], str]) -> None:
    name = plugin("make = 3\n")
    with pytest.raises(WorkloadError, match=r"'make' is a builtins.int, not a callable factory"):
        get_workload(f"{name}:make")


def test_factory_raising(plugin: Callable[[str], str]) -> None:
    name = plugin("def make():\n    raise ValueError('weights file missing')\n")
    with pytest.raises(WorkloadError, match=r"make\(\) raised ValueError: weights file missing"):
        get_workload(f"{name}:make")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return 42", r"returned a builtins\.int; it must return an as_bench Workload"),
        ("return (1, 2)", r"returned a tuple of length 2 \(int, int\)"),
        ("return (torch.nn.ReLU(), 'x')", r"example input 0 is a builtins\.str"),
        ("return (torch.nn.ReLU(), torch.tensor(1.0))", r"example input 0 .* shape \(\)"),
        ("return (torch.nn.ReLU(), ())", r"the example inputs are empty"),
        ("return (torch.nn.Linear(4, 2), torch.ones(3, 5))", r"fails on its own example inputs"),
        (
            "return (Dicty(), torch.ones(3, 5))",
            r"returns a builtins\.dict; as-bench needs a tensor",
        ),
    ],
)
def test_factory_returning_the_wrong_thing(
    plugin: Callable[[str], str], body: str, expected: str
) -> None:
    name = plugin(
        f"""
        import torch

        class Dicty(torch.nn.Module):
            def forward(self, x):
                return {{"x": x}}

        def make():
            {body}
        """
    )
    with pytest.raises(WorkloadError, match=expected):
        get_workload(f"{name}:make")


def test_importing_the_packages_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import sys
        import as_bench.workloads as workloads
        import as_bench.backends as backends

        workloads.builtin_workloads()
        backends.backend_names()
        backends.available_backends()
        heavy = ("torch", "onnxruntime", "onnx", "sklearn", "transformers", "safetensors",
                 "coremltools", "mlx", "ai_edge_litert", "litert_torch")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
