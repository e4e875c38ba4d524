import zipfile
from pathlib import Path

import cv2
import numpy as np

from emobot.face_hash import FaceHash
from ml.faces import decode_image, find_faces
from ml.near_dupes import face_hash, groups, near_pairs
from tests.conftest import FIXTURE_ARCHIVE

ASTRONAUT = Path(__file__).parents[1] / "data" / "faces" / "astronaut.jpg"


def fer_faces() -> list[np.ndarray]:
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        return [
            cv2.imdecode(np.frombuffer(archive.read(n), np.uint8), cv2.IMREAD_GRAYSCALE)
            for n in names
        ]


def crop(photo: np.ndarray) -> np.ndarray:
    """The largest face's crop (a flipped or shrunk photo may show a second, small false one)."""
    return max(find_faces(photo), key=lambda f: f.box[2]).crop


def test_a_re_encoded_and_resized_photo_gives_a_copy_of_its_face() -> None:
    photo = decode_image(ASTRONAUT.read_bytes())
    original = face_hash(crop(photo))
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    smaller = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    assert original.is_copy(face_hash(crop(decode_image(jpeg.tobytes()))))
    assert original.is_copy(face_hash(crop(smaller)))
    assert not original.is_copy(face_hash(crop(cv2.flip(photo, 1))))


def test_different_faces_are_no_copies_and_hashes_fit_postgres_types() -> None:
    hashes = [face_hash(f) for f in fer_faces()]
    assert len(hashes) > 20
    assert all(-(2**63) <= h.phash < 2**63 and len(h.block) == 32 for h in hashes)
    distinct = {h for h in hashes}
    assert near_pairs(list(distinct)) == []


def test_near_pairs_finds_every_close_pair_and_groups_link_them() -> None:
    faces = fer_faces()[:6]
    brighter = cv2.add(faces[2], np.full_like(faces[2], 20))
    hashes = [face_hash(f) for f in faces] + [face_hash(brighter), face_hash(faces[4])]
    assert near_pairs(hashes) == [(2, 6), (4, 7)]
    assert sorted(groups(len(hashes), near_pairs(hashes))) == [[2, 6], [4, 7]]


def test_distance_counts_differing_bits() -> None:
    a = FaceHash(-1, bytes(32))
    b = FaceHash(0, b"\x01" + bytes(31))
    assert a.distance(b) == (64, 1)
