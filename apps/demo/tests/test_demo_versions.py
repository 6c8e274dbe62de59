"""as-optimize's winner, handed to the repository by `as-optimize run --repo`, in the demo."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from as_demo.backends import LocalBackend
from as_demo.service import DemoService

Draw = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


@pytest.mark.slow
def test_the_winner_of_a_real_search_is_offered_and_answers_like_fp32(
    tmp_path: Path, digits_repo: Path, digits: Any, draw: Draw
) -> None:
    pytest.importorskip("torch", reason="as-optimize run exports with torch")
    pytest.importorskip("onnxruntime.quantization", reason="the int8 techniques need it")
    command = shutil.which("as-optimize")
    if command is None:
        pytest.skip("as-optimize is not installed (the workspace has it with its deploy extra)")
    argv = [command, "run", "digits-cnn", "--trials", "1", "--max-time", "0.2"]
    argv += ["-o", str(tmp_path / "search"), "--repo", str(digits_repo)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    service = DemoService(LocalBackend(digits_repo))
    try:
        # The repository held 1 and 2 (fp32); the search's winner is the next version.
        assert service.versions("digits-cnn") == ["3", "2", "1"]
        info = service.backend.describe("digits-cnn", "3")
        assert "as-optimize" in info.title and info.labels == tuple(str(d) for d in range(10))
        same = 0
        for image in digits.images[:20]:
            optimized = service.classify_digit(draw(image), "3")
            fp32 = service.classify_digit(draw(image), "1")
            same += optimized.label == fp32.label
        assert same >= 19  # the search's gate allows at most 1 point of accuracy lost
    finally:
        service.backend.close()
