"""Any picture of a digit in the format of scikit-learn's digits: 8x8, values 0..16.

The ``digits-cnn`` workload (and every model exported from it) reads 8x8 images whose
pixels count ink from 0 to 16, as ``sklearn.datasets.load_digits`` gives them, divided by
16. :func:`digits_from_image` turns a drawing or a photo of any size into that format:
grayscale (an alpha channel is laid over white), light or dark background told apart by
the image's border, the ink's bounding box made square and centred (the digits fill their
8x8 box from top to bottom), then averaged down to 8x8 by area and stretched so that the
darkest stroke counts 16. Pure numpy: importing this module loads neither torch nor
scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DIGITS_SIDE", "DIGITS_TOP", "digits_from_image"]

#: The side of a digits image, in pixels.
DIGITS_SIDE = 8
#: The value of a pixel full of ink in scikit-learn's digits.
DIGITS_TOP = 16.0

# Pixels with less ink than this share of the strongest stroke are background.
_INK_SHARE = 0.2
# An image whose strongest ink is under this (0..1) holds no digit.
_MIN_INK = 0.05
_LUMA = np.array([0.299, 0.587, 0.114])


def _grayscale(image: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Gray levels in 0..1 (1 white) of an ``(H, W)``, ``(H, W, 1|3|4)`` image."""
    if image.dtype.kind in "ui":
        values: npt.NDArray[np.float64] = image.astype(np.float64) / float(
            np.iinfo(image.dtype).max
        )
    elif image.dtype.kind == "f":
        values = image.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            msg = "digits_from_image: a float image must hold finite values in 0..1"
            raise ValueError(msg)
    elif image.dtype.kind == "b":
        values = image.astype(np.float64)
    else:
        msg = f"digits_from_image: pixels of dtype {image.dtype} are not an image"
        raise ValueError(msg)
    if values.ndim == 2:
        return values
    channels = values.shape[2]
    if channels == 1:
        return np.asarray(values[:, :, 0], dtype=np.float64)
    if channels == 2:  # gray and alpha
        gray, alpha = values[:, :, 0], values[:, :, 1]
    else:
        gray = values[:, :, :3] @ _LUMA
        alpha = values[:, :, 3] if channels == 4 else np.ones_like(gray)
    return np.asarray(alpha * gray + (1.0 - alpha), dtype=np.float64)  # over white


def _area_weights(size: int, bins: int) -> npt.NDArray[np.float64]:
    """``(bins, size)`` weights: row i averages the pixels under output bin i by area."""
    edges = np.arange(size + 1, dtype=np.float64) * bins / size  # pixel edges in bin units
    weights = np.zeros((bins, size))
    for i in range(bins):
        overlap = np.clip(np.minimum(edges[1:], i + 1) - np.maximum(edges[:-1], i), 0.0, None)
        weights[i] = overlap * size / bins
    return weights


def digits_from_image(image: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Turn a picture of one digit into an 8x8 digits image, values 0..16, float32.

    Args:
        image: ``(H, W)`` grayscale or ``(H, W, C)`` with 1, 2 (gray, alpha), 3 (RGB) or
            4 (RGBA) channels; integers over their dtype's range (``uint8``: 0..255) or
            floats in 0..1. Dark ink on a light background or light on dark; any size of
            at least 1x1.

    Returns:
        ``(8, 8)`` float32 in 0..16 (ink), as ``load_digits().images`` holds them; divide
        by 16 for the ``digits-cnn`` models.

    Raises:
        ValueError: The array is not an image (shape, dtype, values), or it holds no
            stroke (every pixel the same shade).
    """
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        msg = (
            f"digits_from_image: expected an (H, W) or (H, W, 1|2|3|4) image, "
            f"got shape {list(array.shape)}"
        )
        raise ValueError(msg)
    if array.shape[0] == 0 or array.shape[1] == 0:
        msg = f"digits_from_image: the image is empty (shape {list(array.shape)})"
        raise ValueError(msg)
    gray = _grayscale(array)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    # Ink is how far a pixel is from the background, towards the other end.
    if background >= 0.5:
        ink = np.clip(background - gray, 0.0, None) / max(background, 1e-9)
    else:
        ink = np.clip(gray - background, 0.0, None) / max(1.0 - background, 1e-9)
    strongest = float(ink.max())
    if strongest < _MIN_INK:
        msg = "digits_from_image: the image holds no stroke (draw or upload a digit)"
        raise ValueError(msg)
    rows = np.flatnonzero((ink >= _INK_SHARE * strongest).any(axis=1))
    cols = np.flatnonzero((ink >= _INK_SHARE * strongest).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    side = max(ink.shape)
    square = np.zeros((side, side))
    top, left = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
    square[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    weights = _area_weights(side, DIGITS_SIDE)
    small = weights @ square @ weights.T
    small *= DIGITS_TOP / float(small.max())
    return np.clip(small, 0.0, DIGITS_TOP).astype(np.float32)
