"""DemoService over real backends: the shipped digits model in process and behind a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from as_demo.backends import HttpBackend, LocalBackend, make_backend
from as_demo.errors import DemoError, ModelUnavailableError
from as_demo.service import DemoService

DIGITS = "digits-cnn"
Draw = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


class StepClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def local(digits_repo: Path) -> Iterator[DemoService]:
    backend = LocalBackend(digits_repo)
    yield DemoService(backend, clock=StepClock(0.004))
    backend.close()


def test_pictures_of_real_digits_get_their_label_with_every_probability(
    local: DemoService, digits: Any, draw: Draw
) -> None:
    right = 0
    for image, target in zip(digits.images[:60], digits.target[:60], strict=True):
        answer = local.classify_digit(draw(image), "1")
        assert set(answer.probabilities) == {str(d) for d in range(10)}
        assert sum(answer.probabilities.values()) == pytest.approx(1.0)
        assert answer.label == max(answer.probabilities, key=answer.probabilities.__getitem__)
        right += answer.label == str(target)
    assert right >= 55  # the drawn pictures lose a little framing against the raw 8x8
    assert answer.image.shape == (8, 8) and answer.version.title.startswith("digits-cnn/1 (")


def test_each_request_is_timed_with_the_clock_and_logged_by_version(
    local: DemoService, digits: Any, draw: Draw
) -> None:
    image = draw(digits.images[0])
    first = local.classify_digit(image, "1")
    second = local.classify_digit(image, "2")
    assert first.latency.ms == pytest.approx(4.0) and first.latency.key == f"{DIGITS}/1"
    assert second.latency.key == f"{DIGITS}/2" and second.latency.index == 2
    assert [s.key for s in local.latency.summaries()] == [f"{DIGITS}/1", f"{DIGITS}/2"]


def test_versions_are_newest_first_and_unknown_ones_say_so(
    local: DemoService, digits: Any, draw: Draw
) -> None:
    assert local.versions(DIGITS) == ["2", "1"]
    with pytest.raises(ModelUnavailableError, match=r"no model 'resnet'.*models: digits-cnn"):
        local.versions("resnet")
    with pytest.raises(ModelUnavailableError, match="digits-cnn/7 cannot run"):
        local.classify_digit(draw(digits.images[0]), "7")


def test_a_blank_picture_is_refused_with_the_reason(local: DemoService) -> None:
    with pytest.raises(DemoError, match="holds no stroke"):
        local.classify_digit(np.full((64, 64), 255, dtype=np.uint8), "1")
    assert local.latency.count == 0


def test_without_minilm_the_sentence_tab_explains_how_to_get_it(local: DemoService) -> None:
    problem = local.minilm_problem()
    assert problem is not None
    assert "no model 'minilm'" in problem or "tokenizer is not installed" in problem
    with pytest.raises(ModelUnavailableError):
        local.similarity("A cat sleeps.", "A dog runs.", "1")


def test_the_server_gives_the_same_answers_as_the_repository_in_process(
    model_server: str, digits_repo: Path, digits: Any, draw: Draw
) -> None:
    remote = DemoService(HttpBackend(model_server), clock=StepClock(0.001))
    local = DemoService(LocalBackend(digits_repo))
    try:
        assert remote.versions(DIGITS) == ["2", "1"]
        assert "model server at http://127.0.0.1:" in remote.backend.where
        for image in digits.images[:5]:
            far = remote.classify_digit(draw(image), "2")
            near = local.classify_digit(draw(image), "2")
            assert far.label == near.label
            for label, p in near.probabilities.items():
                assert far.probabilities[label] == pytest.approx(p, abs=1e-5)
        assert far.version.title == near.version.title
        with pytest.raises(ModelUnavailableError, match="404"):
            remote.classify_digit(draw(image), "9")
    finally:
        remote.backend.close()
        local.backend.close()


def test_a_server_that_is_not_there_is_named_in_the_error(unused_port: int) -> None:
    url = f"http://127.0.0.1:{unused_port}"
    service = DemoService(make_backend(url, None, timeout_s=2.0))
    try:
        with pytest.raises(DemoError, match=rf"model server at {url} did not answer.*running"):
            service.versions(DIGITS)
        problem = service.minilm_problem() or ""
        assert "did not answer" in problem or "tokenizer is not installed" in problem
    finally:
        service.backend.close()


def test_the_default_backend_is_the_shipped_digits_model(tmp_path: Path) -> None:
    backend = make_backend(None, None, timeout_s=1.0)
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.models() == {DIGITS: ["1"]}
    finally:
        backend.close()
    with pytest.raises(DemoError, match="does not exist or is not a folder"):
        make_backend(None, tmp_path / "missing", timeout_s=1.0)


@pytest.mark.slow
@pytest.mark.xdist_group("minilm")
def test_minilm_exported_into_the_repository_scores_related_sentences_higher(
    minilm_repo: Path,
) -> None:
    repo = minilm_repo
    service = DemoService(LocalBackend(repo), clock=StepClock(0.002))
    try:
        assert service.minilm_problem() is None
        guitar = "A man is playing a guitar on a small stage."
        close = service.similarity(guitar, "Someone plays an instrument for an audience.", "1")
        far = service.similarity(guitar, "Interest rates rose for the third time this year.", "1")
        assert 0.3 < close.cosine <= 1.0 and far.cosine < close.cosine - 0.2
        assert not close.truncated and close.latency.key == "minilm/1"
        long = service.similarity(guitar, " ".join(["guitar"] * 50), "1")
        assert long.truncated
        with pytest.raises(DemoError, match="type two sentences"):
            service.similarity(guitar, "  ", "1")
    finally:
        service.backend.close()
