import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ml.blazeface import MAX_NETWORKS, BlazeFace
from ml.faces import TEMPLATE, align, decode_image, face_at, find_faces, whole_face
from ml.image_header import ImageError, TooManyPixels, UnusableShape
from tests.conftest import fer_face

PHOTOS = Path(__file__).parents[1] / "data" / "faces"
# Where the faces are (checked by eye on the pictures with the boxes drawn), x, y, w, h.
ASTRONAUT_FACE = (173, 76, 100, 100)


def photo(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


def near(box: tuple[int, ...], expected: tuple[int, ...], tol: float) -> bool:
    return all(abs(a - b) <= tol * expected[2] for a, b in zip(box, expected, strict=True))


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_a_photo_without_faces_has_none() -> None:
    image = decode_image(photo("coffee.jpg"))
    assert image.shape == (400, 600, 3)
    assert find_faces(image) == []


def test_one_face_is_found_where_it_is_with_its_eyes_and_mouth() -> None:
    faces = find_faces(decode_image(photo("astronaut.jpg")))
    assert len(faces) == 1
    face = faces[0]
    assert near(face.box, ASTRONAUT_FACE, 0.1)
    assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
    assert face.landmarks is not None
    (lx, ly), (rx, ry), (mx, my) = face.landmarks
    assert 190 < lx < 215 < 235 < rx < 260 and 95 < ly < 115 and 95 < ry < 115  # by eye
    assert lx < mx < rx and my > max(ly, ry) + 30
    assert abs(face.roll) < 10


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("coffee.jpg", 0),
        ("astronaut.jpg", 1),
        ("three_faces.jpg", 3),
        ("group_three.jpg", 3),
        ("six_faces.jpg", 6),
    ],
)
def test_every_face_is_found_once_left_to_right(name: str, count: int) -> None:
    faces = find_faces(decode_image(photo(name)))
    assert len(faces) == count
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs)
    assert all(f.crop.shape == (48, 48) for f in faces)


def test_three_faces_are_where_they_were_pasted() -> None:
    faces = find_faces(decode_image(photo("three_faces.jpg")))
    # Two heads of Grace Hopper pasted below the astronaut (tests/data/faces/make_photos.py).
    assert near(faces[0].box, (50, 340, 97, 97), 0.15)
    assert near(faces[1].box, ASTRONAUT_FACE, 0.1)
    assert near(faces[2].box, (377, 357, 85, 85), 0.15)


def test_a_face_and_its_mirror_image_are_both_cut_upright() -> None:
    # group_three.jpg holds the astronaut's head and its mirror image (make_photos.py): their
    # tilts are opposite and small. Keypoints from the fine pass alone put the mirrored one at
    # 18° until each face was looked at again alone.
    faces = find_faces(decode_image(photo("group_three.jpg")))
    astronaut, mirrored = faces[0], faces[2]
    assert abs(astronaut.roll) < 8
    assert abs(mirrored.roll) < 8
    assert correlation(astronaut.crop[:, ::-1], mirrored.crop) > 0.8


def test_the_crop_puts_eyes_and_mouth_where_fer2013_has_them() -> None:
    image = decode_image(photo("astronaut.jpg"))
    face = find_faces(image)[0]
    # Mark the landmarks as bright dots: aligned, they land on the template's points.
    marked = image.copy()
    for x, y in face.landmarks or ():
        cv2.circle(marked, (round(x), round(y)), 3, (255, 255, 255), -1)
    crop = align(marked, face.landmarks)  # type: ignore[arg-type]
    for x, y in TEMPLATE:
        assert crop[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].max() > 200


def test_a_tilted_head_comes_out_upright() -> None:
    image = decode_image(photo("astronaut.jpg"))
    upright = find_faces(image)[0]
    centre = (upright.box[0] + upright.box[2] / 2, upright.box[1] + upright.box[3] / 2)
    rotation = cv2.getRotationMatrix2D(centre, 30, 1.0)  # 30° anticlockwise on screen
    tilted = cv2.warpAffine(image, rotation, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    faces = find_faces(tilted)
    assert len(faces) == 1
    assert faces[0].roll == pytest.approx(upright.roll - 30, abs=6)
    # The aligned crops of the upright and the tilted head are nearly the same picture; an
    # unaligned crop of the tilted head is not.
    assert correlation(faces[0].crop, upright.crop) > 0.9
    assert correlation(whole_face(tilted[76:176, 173:273]).crop, upright.crop) < 0.8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright(orientation: int) -> None:
    upright = Image.open(PHOTOS / "astronaut.jpg")
    # The pixels as a camera would store them for this tag (the inverse of exif_transpose).
    stored = {
        1: upright,
        2: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        3: upright.transpose(Image.Transpose.ROTATE_180),
        4: upright.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        5: upright.transpose(Image.Transpose.TRANSPOSE),
        6: upright.transpose(Image.Transpose.ROTATE_90),
        7: upright.transpose(Image.Transpose.TRANSVERSE),
        8: upright.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    faces = find_faces(decode_image(encode(stored, exif=exif.tobytes())))
    assert len(faces) == 1 and near(faces[0].box, ASTRONAUT_FACE, 0.1)
    assert abs(faces[0].roll) < 10


def test_a_face_filling_the_whole_frame_is_found() -> None:
    image = decode_image(photo("astronaut.jpg"))
    x, y, w, h = ASTRONAUT_FACE
    close_up = cv2.resize(image[y + 5 : y + h - 5, x + 5 : x + w - 5], (350, 350))
    faces = find_faces(close_up)
    assert len(faces) == 1 and faces[0].box[2] > 250
    assert faces[0].landmarks is not None


def test_grey_palette_and_transparent_images_decode_to_bgr() -> None:
    astronaut = Image.open(PHOTOS / "astronaut.jpg")
    grey = decode_image(encode(astronaut.convert("L")))
    assert grey.shape == (512, 512, 3) and (grey[..., 0] == grey[..., 2]).all()
    assert len(find_faces(grey)) == 1
    assert decode_image(encode(astronaut.convert("P"), "PNG")).shape == (512, 512, 3)
    transparent = Image.new("RGBA", (120, 80), (255, 0, 0, 0))
    transparent.paste((0, 0, 255, 255), (0, 0, 60, 80))
    decoded = decode_image(encode(transparent, "PNG"))
    assert tuple(decoded[0, 0]) == (255, 0, 0)  # blue, as BGR
    assert tuple(decoded[0, 100]) == (255, 255, 255)  # transparent → white


def test_a_large_jpeg_is_decoded_at_reduced_size_and_its_face_found() -> None:
    astronaut = Image.open(PHOTOS / "astronaut.jpg")
    big = encode(astronaut.resize((4096, 4096), Image.Resampling.BICUBIC))
    image = decode_image(big)
    assert image.shape == (1024, 1024, 3)  # DCT scaling by 1/4: ≥ 1024 px on the long side
    faces = find_faces(image)
    assert len(faces) == 1 and near(faces[0].box, tuple(2 * v for v in ASTRONAUT_FACE), 0.1)
    # A PNG has no DCT scaling: decoded whole.
    assert decode_image(encode(astronaut.resize((2048, 2048)), "PNG")).shape == (2048, 2048, 3)


def test_a_48px_crop_is_classified_whole() -> None:
    image = decode_image(fer_face())
    assert image.shape == (48, 48, 3)
    faces = find_faces(image)
    assert len(faces) == 1 and faces[0].box == (0, 0, 48, 48) and faces[0].landmarks is None
    original = cv2.imdecode(np.frombuffer(fer_face(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(faces[0].crop, original)


def test_a_small_square_image_without_a_face_is_taken_whole() -> None:
    image = decode_image(photo("coffee.jpg"))[:200, :200]
    faces = find_faces(image)
    assert len(faces) == 1 and faces[0].box == (0, 0, 200, 200)


def test_whole_face_takes_the_centre_square() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 255
    face = whole_face(image)
    assert face.box == (20, 0, 60, 60)
    assert (face.crop == 255).all()


def test_a_stored_box_is_cropped_as_inference_crops_it() -> None:
    image = decode_image(photo("three_faces.jpg"))
    faces = find_faces(image)
    for face in faces:
        again = face_at(image, face.box)
        assert again.box == face.box and np.array_equal(again.crop, face.crop)
    # A box where no face is found: its centre square.
    assert face_at(image, (0, 0, 40, 40)).box == (0, 0, 40, 40)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1, 1), (30_000, 10), (10, 30_000), (23, 400), (2000, 200)],
    ids=["1x1", "30000x10", "10x30000", "too-narrow", "10:1"],
)
def test_images_that_cannot_hold_a_face_are_refused_before_decoding(
    width: int, height: int
) -> None:
    data = encode(Image.new("L", (width, height), 128), "PNG")
    with pytest.raises(UnusableShape) as refused:
        decode_image(data)
    assert (refused.value.width, refused.value.height) == (width, height)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not an image",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    ],
    ids=["empty", "text", "pdf"],
)
def test_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(ImageError):
        decode_image(data)


def test_truncated_and_corrupt_jpegs_are_refused() -> None:
    data = photo("astronaut.jpg")
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageError):
        decode_image(data[:200] + b"\x00" * 500)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    # 100 M pixels in a few kB: decoding it would take 300 MB.
    bomb = encode(Image.new("1", (10_000, 10_000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(TooManyPixels):
        decode_image(bomb)
    with pytest.raises(TooManyPixels):
        decode_image(photo("astronaut.jpg"), max_pixels=512 * 511)


def test_a_detector_keeps_a_few_interpreters_whatever_shapes_it_is_sent() -> None:
    """The fine pass sizes its input to each photo's shape; a detector that kept one
    interpreter per shape (26 MB each) would grow with every new aspect ratio."""
    detector = BlazeFace()
    astronaut = decode_image(photo("astronaut.jpg"))
    for width in range(600, 1400, 100):  # eight aspect ratios, each a fine pass of its own
        resized = cv2.resize(astronaut, (width, 512))
        assert len(detector.detect(resized)) == 1
    assert len(detector._networks) <= 4 == MAX_NETWORKS
