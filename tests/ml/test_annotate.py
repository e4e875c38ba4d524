import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.annotate import COLOURS, annotate


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_boxes_and_labels_are_drawn() -> None:
    image = np.full((300, 400, 3), 40, np.uint8)
    boxes = [(50, 100, 80, 80), (250, 120, 90, 90)]
    out = decode(annotate(image, boxes, ["счастливый", "neutral"]))
    assert out.shape == (300, 400, 3)
    # The left edge of each box has its colour; the middle of the photo is untouched.
    for (x, y, _, h), colour in zip(boxes, COLOURS, strict=False):
        assert np.abs(out[y + h // 2, x] - colour).max() < 40
    assert np.abs(out[250, 200] - 40).max() < 10
    # The label plates above the boxes hold white text.
    assert (out[60:100, 50:130] > 200).all(axis=-1).any()


def test_a_huge_photo_is_shrunk() -> None:
    image = np.zeros((2000, 4000, 3), np.uint8)
    out = decode(annotate(image, [(100, 100, 400, 400)], ["happy"]))
    assert out.shape == (800, 1600, 3)
    assert np.abs(out[120, 40] - COLOURS[0]).max() < 40  # box mapped to the smaller picture


def test_labels_must_match_faces() -> None:
    with pytest.raises(ValueError):
        annotate(np.zeros((10, 10, 3), np.uint8), [(0, 0, 5, 5)], [])


def test_the_font_exists() -> None:
    from ml.annotate import _font_path

    assert Path(_font_path()).is_file()
