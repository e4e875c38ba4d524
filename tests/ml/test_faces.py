import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ml.faces import (
    ImageError,
    crop_box,
    decode_image,
    detect_boxes,
    find_faces,
    whole_face,
)
from tests.conftest import FIXTURE_ARCHIVE

PHOTOS = Path(__file__).parents[1] / "data" / "faces"
# Where the astronaut's face is in astronaut.jpg (checked by eye), x, y, w, h.
ASTRONAUT_FACE = (178, 68, 93, 93)


def photo(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


def fer_face(name: str = "train/happy/Training_10019449.jpg") -> bytes:
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        return archive.read(name)


def near(box: tuple[int, int, int, int], expected: tuple[int, int, int, int], tol: float) -> bool:
    return all(abs(a - b) <= tol * expected[2] for a, b in zip(box, expected, strict=True))


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def test_a_photo_without_faces_has_none() -> None:
    image = decode_image(photo("coffee.jpg"))
    assert image.shape == (400, 600, 3)
    assert find_faces(image) == []


def test_one_face_is_found_where_it_is() -> None:
    faces = find_faces(decode_image(photo("astronaut.jpg")))
    assert len(faces) == 1
    assert near(faces[0].box, ASTRONAUT_FACE, 0.15)
    assert faces[0].crop.shape == (48, 48) and faces[0].crop.dtype == np.uint8


def test_three_faces_are_found_left_to_right() -> None:
    faces = find_faces(decode_image(photo("three_faces.jpg")))
    assert len(faces) == 3
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs)
    # The two pasted FER2013 faces (110 px at x=20 and x=392) and the astronaut between them.
    assert near(faces[0].box, (20, 330, 110, 110), 0.2)
    assert near(faces[1].box, ASTRONAUT_FACE, 0.15)
    assert near(faces[2].box, (392, 330, 110, 110), 0.2)


def test_the_crop_of_a_pasted_fer_face_looks_like_the_original() -> None:
    original = cv2.imdecode(np.frombuffer(fer_face(), np.uint8), cv2.IMREAD_GRAYSCALE)
    crop = find_faces(decode_image(photo("three_faces.jpg")))[0].crop
    # Same face at the same framing: strongly correlated pixels (a misplaced crop is not).
    corr = np.corrcoef(original.ravel().astype(float), crop.ravel().astype(float))[0, 1]
    assert corr > 0.8


def test_exif_orientation_is_applied() -> None:
    upright = Image.open(PHOTOS / "astronaut.jpg")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # pixels lying on their side
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(stored, exif=exif.tobytes())
    assert detect_boxes(np.asarray(stored)[:, :, ::-1]) == []  # sideways, the cascade sees none
    image = decode_image(data)
    assert image.shape == (512, 512, 3)
    faces = find_faces(image)
    assert len(faces) == 1 and near(faces[0].box, ASTRONAUT_FACE, 0.15)


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


def test_a_large_photo_is_searched_downscaled_and_boxes_map_back() -> None:
    astronaut = Image.open(PHOTOS / "astronaut.jpg")
    big = decode_image(encode(astronaut.resize((2560, 2560), Image.Resampling.BICUBIC)))
    faces = find_faces(big)
    assert len(faces) == 1
    assert near(faces[0].box, tuple(v * 5 for v in ASTRONAUT_FACE), 0.15)  # type: ignore[arg-type]


def test_a_48px_crop_is_classified_whole() -> None:
    image = decode_image(fer_face())
    assert image.shape == (48, 48, 3)
    faces = find_faces(image)
    assert len(faces) == 1 and faces[0].box == (0, 0, 48, 48)
    original = cv2.imdecode(np.frombuffer(fer_face(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(faces[0].crop, original)


def test_a_small_square_image_without_a_face_is_taken_whole() -> None:
    image = decode_image(photo("coffee.jpg"))[:200, :200]
    assert detect_boxes(image) == []
    faces = find_faces(image)
    assert len(faces) == 1 and faces[0].box == (0, 0, 200, 200)


def test_whole_face_takes_the_centre_square() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 255
    face = whole_face(image)
    assert face.box == (20, 0, 60, 60)
    assert (face.crop == 255).all()


def test_crop_box_pads_at_the_edges() -> None:
    image = np.full((100, 100), 200, np.uint8)
    crop = crop_box(image, (-10, -10, 40, 40))
    assert crop.shape == (48, 48) and (crop == 200).all()


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
    with pytest.raises(ImageError, match="pixels"):
        decode_image(bomb)
    with pytest.raises(ImageError, match="pixels"):
        decode_image(photo("astronaut.jpg"), max_pixels=512 * 511)
