"""Shared pieces of as-optimize's tests: the digits data set and a small model to train."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits: 1797 8x8 images scaled to [0, 1], and their labels."""
    import torch
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(data.target, dtype=torch.long)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: bit-identical CPU results and no fight over the two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FullDisk = Callable[[Path, int], None]


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    """``full_disk(prefix, after_bytes)``: writes to files under ``prefix`` fail with ENOSPC.

    ``prefix`` is a folder or the start of a path. Writes to files whose path starts
    with it succeed until ``after_bytes`` bytes in all, then each
    one raises ``OSError(ENOSPC)``, as on a full disk; other files are written as usual.
    The file behind a descriptor is found through /proc (Linux).
    """
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file a descriptor writes to")
    real_write = os.write

    def install(folder: Path, after_bytes: int = 0) -> None:
        written = [0]

        def write(fd: int, data: bytes | memoryview) -> int:
            try:
                target = str(Path(f"/proc/self/fd/{fd}").readlink())
            except OSError:
                target = ""
            if target.startswith(str(folder)):
                written[0] += len(data)
                if written[0] > after_bytes:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)

    return install


@dataclasses.dataclass
class RotatedHead:
    """A technique that breaks the model: the last Gemm's output rows are rotated by one."""

    name: str = "rotated-head"
    runtime: str = "onnxruntime"
    targets: tuple[str, ...] = ("cpu",)
    description: str = "rotates the classifier's output rows (a broken candidate)"
    when_it_pays: str = "never"

    def applies_to(self, model: Any) -> tuple[bool, str]:
        return "Gemm" in model.op_types, "the model ends in a Gemm"

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        return op_type == "Gemm", "rotated"

    def knobs(self) -> list[dict[str, Any]]:
        return [{}]

    def apply(self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: Any) -> Path:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(baseline))
        last = [node for node in model.graph.node if node.op_type == "Gemm"][-1]
        for index, tensor in enumerate(model.graph.initializer):
            if tensor.name == last.input[1]:
                rotated = np.roll(numpy_helper.to_array(tensor), 1, axis=0)
                model.graph.initializer[index].CopyFrom(
                    numpy_helper.from_array(rotated, tensor.name)
                )
        output.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(output))
        return output


@pytest.fixture(scope="session")
def broken_head() -> type[RotatedHead]:
    """A technique whose candidate loses accuracy (``RotatedHead(name=...)``)."""
    return RotatedHead
