"""Rebuilds the test photos in this folder (run once; the JPEGs are committed).

Sources, both public domain: `astronaut.png` (NASA portrait of Eileen Collins) and `coffee.png`
from the scikit-image wheel (`pip download --no-deps scikit-image`, unzip `skimage/data/`), and
two FER2013 faces from `tests/data/fer_small.zip`.

    python tests/data/faces/make_photos.py /path/to/skimage/data
"""

import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent
FIXTURE = HERE.parent / "fer_small.zip"
# Two FER2013 faces pasted beside the astronaut at 110 px: three real faces in one photo.
PASTED = {
    "train/happy/Training_10019449.jpg": (20, 330),
    "train/neutral/Training_10055498.jpg": (392, 330),
}


def main(skimage_data: Path) -> None:
    astronaut = cv2.imread(str(skimage_data / "astronaut.png"))
    coffee = cv2.imread(str(skimage_data / "coffee.png"))
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 88]
    cv2.imwrite(str(HERE / "astronaut.jpg"), astronaut, jpeg)
    cv2.imwrite(str(HERE / "coffee.jpg"), coffee, jpeg)
    three = astronaut.copy()
    with zipfile.ZipFile(FIXTURE) as archive:
        for name, (x, y) in PASTED.items():
            face = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            face = cv2.resize(face, (110, 110), interpolation=cv2.INTER_CUBIC)
            three[y : y + 110, x : x + 110] = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(HERE / "three_faces.jpg"), three, jpeg)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
