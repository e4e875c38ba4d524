"""Photos sent turned: found in their quarter turn, cut upright, never turned when upright."""

import cv2
import numpy as np
import pytest

from ml.faces import decode_image, find_faces
from ml.upright import TURNS, turned, upright_faces
from tests.ml.test_faces import PHOTOS, correlation

# Portraits and group photos built from public-domain faces (tests/data/faces/make_photos.py).
NAMES = ("astronaut.jpg", "group_one.jpg", "three_faces.jpg", "group_three.jpg")
UNDO = {90: 270, 180: 180, 270: 90}  # turning by UNDO[d] makes a photo turned by d upright


@pytest.mark.parametrize("name", NAMES)
def test_an_upright_photo_is_never_turned(name: str) -> None:
    image = decode_image((PHOTOS / name).read_bytes())
    faces, same, degrees = upright_faces(image)
    assert degrees == 0 and same is image
    assert [f.box for f in faces] == [f.box for f in find_faces(image)]


@pytest.mark.parametrize("degrees", sorted(TURNS))
@pytest.mark.parametrize("name", NAMES)
def test_a_turned_photo_is_turned_back_and_its_faces_cut_as_upright(
    name: str, degrees: int
) -> None:
    image = decode_image((PHOTOS / name).read_bytes())
    sent = turned(image, UNDO[degrees])  # a photo taken with the phone turned
    faces, upright, found = upright_faces(sent)
    assert found == degrees and np.array_equal(upright, image)
    expected = find_faces(image)
    assert len(faces) == len(expected)
    for face, reference in zip(faces, expected, strict=True):
        assert correlation(face.crop, reference.crop) > 0.95


def test_a_small_crop_is_taken_whole_as_it_is() -> None:
    crop = cv2.resize(decode_image((PHOTOS / "astronaut.jpg").read_bytes()), (48, 48))
    faces, _, degrees = upright_faces(turned(crop, 180))
    assert degrees == 0 and len(faces) == 1 and faces[0].landmarks is None
