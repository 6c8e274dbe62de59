"""as-optimize's winner stored as a version next to the fp32 one, and run by the demo."""

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
from as_demo.errors import DemoError
from as_demo.service import DemoService
from as_demo.versions import add_optimized_version

Draw = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


def test_a_folder_without_a_search_report_is_named(tmp_path: Path, digits_repo: Path) -> None:
    with pytest.raises(DemoError, match=r"report.json: not an as-optimize report"):
        add_optimized_version(digits_repo, tmp_path, "3-int8")


@pytest.mark.slow
def test_the_winner_of_a_real_search_is_offered_and_answers_like_fp32(
    tmp_path: Path, digits_repo: Path, digits: Any, draw: Draw
) -> None:
    pytest.importorskip("torch", reason="as-optimize run exports with torch")
    pytest.importorskip("onnxruntime.quantization", reason="the int8 techniques need it")
    command = shutil.which("as-optimize")
    assert command is not None, "as-optimize is a dependency of as-demo"
    out = tmp_path / "search"
    run = subprocess.run(
        [command, "run", "digits-cnn", "--trials", "1", "--max-time", "0.2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    from as_optimize.compress import SearchReport

    report = SearchReport.model_validate_json((out / "report.json").read_text())
    passed = [c.id for c in report.candidates if c.status == "passed"]
    assert passed, report.candidates  # int8 of the digits CNN keeps its accuracy
    # The winner is whichever was fastest on this (busy) machine, fp32 included: add the
    # compressed candidate by name, as `demo add-version --candidate` does.
    folder = add_optimized_version(digits_repo, out, "3-int8", candidate=passed[0])
    assert folder == digits_repo / "digits-cnn" / "3-int8"
    service = DemoService(LocalBackend(digits_repo))
    try:
        assert service.versions("digits-cnn") == ["3-int8", "2", "1"]
        info = service.backend.describe("digits-cnn", "3-int8")
        assert "as-optimize" in info.title and info.labels == tuple(str(d) for d in range(10))
        same = 0
        for image in digits.images[:20]:
            compressed = service.classify_digit(draw(image), "3-int8")
            fp32 = service.classify_digit(draw(image), "1")
            same += compressed.label == fp32.label
        assert same >= 19  # the search's gate allows at most 1 point of accuracy lost
    finally:
        service.backend.close()
    with pytest.raises(DemoError, match="already exists"):
        add_optimized_version(digits_repo, out, "3-int8", candidate=passed[0])
    with pytest.raises(DemoError, match=r"candidate 'nope' is not one; those that passed"):
        add_optimized_version(digits_repo, out, "5", candidate="nope")
    with pytest.raises(DemoError, match=r"cannot add resnet/4: model not found"):
        add_optimized_version(digits_repo, out, "4", name="resnet", candidate=passed[0])
