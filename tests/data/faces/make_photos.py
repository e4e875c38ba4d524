"""Rebuilds the test photos in this folder (run once; the JPEGs are committed).

Every face in them is from a public-domain portrait: `astronaut.png` (NASA portrait of Eileen
Collins) and `coffee.png` from the scikit-image wheel (`pip download --no-deps scikit-image`,
unzip `skimage/data/`), and Grace Hopper (US Navy) from matplotlib's sample data.

    python tests/data/faces/make_photos.py /path/to/skimage/data

- `astronaut.jpg` (512×512, one face), `coffee.jpg` (600×400, none): the sources as JPEG.
- `three_faces.jpg` (512×512): the astronaut with two heads of Grace Hopper pasted below.
- `group_one.jpg`, `group_three.jpg` (1280×960, the size Telegram delivers): one face, three.
- `six_faces.jpg` (1280×960): a 3×2 grid of heads on grey.
"""

import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np

HERE = Path(__file__).parent
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 88]
# Face boxes (x, y, w, h) in the sources, as the detector finds them.
ASTRONAUT_FACE = (173, 76, 100, 100)
HOPPER_FACE = (166, 143, 200, 200)


def head(image: np.ndarray, face: tuple[int, int, int, int], face_px: int, mirror: bool = False):
    """The head around `face`, scaled so the face box is `face_px` wide, and a feathered oval
    mask that blends it into a new background without a hard edge."""
    x, y, w, h = face
    cx, cy, side = x + w / 2, y + h / 2, 1.8 * w
    left, top = round(cx - side / 2), round(cy - side / 2)
    pad = max(
        0, -left, -top, left + round(side) - image.shape[1], top + round(side) - image.shape[0]
    )
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    part = padded[top + pad : top + pad + round(side), left + pad : left + pad + round(side)]
    size = round(face_px * 1.8)
    part = cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA)
    if mirror:
        part = part[:, ::-1]
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(
        mask, (size // 2, size // 2), (int(size * 0.42), int(size * 0.48)), 0, 0, 360, 1, -1
    )
    mask = cv2.GaussianBlur(mask, (0, 0), size * 0.04)
    return part, mask


def paste(canvas: np.ndarray, part: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Blend `part` into `canvas` with its top-left corner at (x, y)."""
    h, w = mask.shape
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    blended = region * (1 - mask[..., None]) + part.astype(np.float32) * mask[..., None]
    canvas[y : y + h, x : x + w] = blended.astype(np.uint8)


def main(skimage_data: Path) -> None:
    astronaut = cv2.imread(str(skimage_data / "astronaut.png"))
    coffee = cv2.imread(str(skimage_data / "coffee.png"))
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    cv2.imwrite(str(HERE / "astronaut.jpg"), astronaut, JPEG)
    cv2.imwrite(str(HERE / "coffee.jpg"), coffee, JPEG)

    three = astronaut.copy()
    paste(three, *head(hopper, HOPPER_FACE, 100), 10, 300)
    paste(three, *head(hopper, HOPPER_FACE, 90, mirror=True), 340, 320)
    cv2.imwrite(str(HERE / "three_faces.jpg"), three, JPEG)

    one = cv2.resize(astronaut, (1280, 1280), interpolation=cv2.INTER_CUBIC)[:960]
    cv2.imwrite(str(HERE / "group_one.jpg"), one, JPEG)

    group = cv2.resize(coffee, (1280, 960), interpolation=cv2.INTER_CUBIC)
    paste(group, *head(astronaut, ASTRONAUT_FACE, 200), 40, 250)
    paste(group, *head(hopper, HOPPER_FACE, 230), 470, 150)
    paste(group, *head(astronaut, ASTRONAUT_FACE, 170, mirror=True), 900, 330)
    cv2.imwrite(str(HERE / "group_three.jpg"), group, JPEG)

    grid = np.full((960, 1280, 3), 128, np.uint8)
    sources = [(astronaut, ASTRONAUT_FACE), (hopper, HOPPER_FACE)]
    for i in range(6):
        image, face = sources[i % 2]
        part, mask = head(image, face, 200 - 15 * i, mirror=i >= 3)
        row, col = divmod(i, 3)
        paste(grid, part, mask, 40 + col * 420, 60 + row * 450)
    cv2.imwrite(str(HERE / "six_faces.jpg"), grid, JPEG)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
