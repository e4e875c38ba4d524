"""The small FER2013-layout archive the tests import, train and evaluate on, built at test time.

FER2013 is not ours to redistribute, so no image of it is committed: with the real archive at
hand the fixture takes the first three images of every split and emotion from it; without,
it draws synthetic 48×48 grey faces in the same layout. Either way it carries FER2013's flaws
in miniature: a byte-identical copy inside train, a test image that also sits in train, a
copy with a conflicting label, and a blank image in train/angry.

    python -m tests.make_fixture_archive OUT.zip [--fer2013 PATH]
"""

import argparse
import zipfile
from pathlib import Path

import cv2
import numpy as np

from emobot.labels import FER_TO_CLASS, SPLITS

PER_FOLDER = 3
# The synthetic faces' mouths: (corner height, centre height, opening) relative to the mouth line.
_MOUTHS = {
    "happy": (-3, 4, 0),
    "surprise": (0, 0, 6),
    "neutral": (0, 0, 0),
}


def _real_files(source: Path) -> list[tuple[str, bytes]]:
    """The first PER_FOLDER images of every split and emotion of the real archive, by name."""
    files = []
    with zipfile.ZipFile(source) as archive:
        taken: dict[tuple[str, str], int] = {}
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) != 3 or not name.endswith(".jpg"):
                continue
            key = (parts[0], parts[1])
            if taken.get(key, 0) < PER_FOLDER:
                taken[key] = taken.get(key, 0) + 1
                files.append((name, archive.read(name)))
    return files


def synthetic_face(emotion: str, rng: np.random.Generator) -> np.ndarray:
    """A 48×48 grey cartoon face: an oval head, two eyes and a mouth shaped by the emotion
    (FER2013's negative emotions frown), under lighting of its own, a smooth random field, so
    that no two faces are alike, not even to the perceptual hashes of ml.near_dupes."""
    image = np.zeros((48, 48), np.float32)
    centre = (24 + int(rng.integers(-3, 4)), 25 + int(rng.integers(-3, 4)))
    axes = (int(rng.integers(13, 19)), int(rng.integers(17, 23)))
    cv2.ellipse(image, centre, axes, float(rng.uniform(-15, 15)), 0, 360, 80, -1)
    cx, cy = centre
    for dx in (-7, 7):
        cv2.circle(image, (cx + dx, cy - 5), int(rng.integers(1, 4)), -60, -1)
    corner, middle, opening = _MOUTHS.get(emotion, (3, -3, 0))
    y = cy + 9
    if opening:
        cv2.ellipse(image, (cx, y), (4, opening), 0, 0, 360, -60, -1)
    else:
        points = np.array([(cx - 7, y + corner), (cx, y + middle), (cx + 7, y + corner)])
        cv2.polylines(image, [points.astype(np.int32)], False, -60, 2)
    lighting = cv2.resize(rng.normal(0, 45, (4, 4)), (48, 48), interpolation=cv2.INTER_CUBIC)
    image += 90 + lighting + rng.normal(0, 6, (48, 48))
    return image.clip(0, 255).astype(np.uint8)


def _synthetic_files(seed: int = 13) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    files = []
    number = 10_000_000
    for split in SPLITS:
        prefix = "Training" if split == "train" else "PrivateTest"
        for emotion in sorted(FER_TO_CLASS):
            for i in range(PER_FOLDER):
                number += 1
                face = synthetic_face(emotion, rng)
                if (split, emotion, i) == ("train", "angry", 2):
                    face = np.full((48, 48), 18, np.uint8)  # FER2013 has 13 blank images
                ok, jpeg = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 90])
                assert ok
                files.append((f"{split}/{emotion}/{prefix}_{number}.jpg", jpeg.tobytes()))
    return files


def build(target: Path, fer2013: Path | None = None) -> Path:
    """Write the fixture archive to `target` (atomically) from `fer2013` when it is a file,
    synthetic faces otherwise."""
    files = _real_files(fer2013) if fer2013 is not None and fer2013.is_file() else []
    files = files or _synthetic_files()
    first_train = next(data for name, data in files if name.startswith("train/happy/"))
    first_test = next(data for name, data in files if name.startswith("test/sad/"))
    files += [
        ("train/happy/Training_dup00001.jpg", first_train),  # duplicate within train
        ("train/sad/Training_leak0001.jpg", first_test),  # test image leaked into train
        ("train/neutral/Training_conflict1.jpg", first_train),  # same bytes, other label
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, data in files:
            archive.writestr(name, data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fer2013", type=Path)
    args = parser.parse_args()
    print(f"written to {build(args.out, args.fer2013)}")
