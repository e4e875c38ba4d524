"""Classifying the faces in image files (`emobot predict`), many images per model call."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emobot.labels import CLASSES
from ml.faces import Face, ImageError, decode_image, whole_face
from ml.inference import Predictor
from ml.upright import upright_faces

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Clips, which `emobot predict` reads with ml/clips.py, found in folders too.
CLIP_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"})


@dataclass
class ImageResult:
    path: Path
    faces: list[Face]
    probs: np.ndarray  # (len(faces), 4)
    error: str | None = None
    image: np.ndarray | None = None  # kept only when asked for (annotating)
    # Width and height of the decoded image the boxes refer to: a large JPEG is decoded at a
    # reduced scale.
    size: tuple[int, int] = (0, 0)

    @property
    def labels(self) -> list[str]:
        return [CLASSES[k] for k in self.probs.argmax(axis=1)] if len(self.faces) else []

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": str(self.path), "error": self.error}
        return {
            "path": str(self.path),
            "width": self.size[0],
            "height": self.size[1],
            "faces": [
                {
                    "box": list(face.box),
                    "label": label,
                    "probs": {c: round(float(p), 4) for c, p in zip(CLASSES, probs, strict=True)},
                }
                for face, label, probs in zip(self.faces, self.labels, self.probs, strict=True)
            ],
        }


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; folders searched recursively for images, in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | CLIP_SUFFIXES
            )
        else:
            yield path


def _faces_of(path: Path, whole: bool, max_pixels: int) -> tuple[np.ndarray, list[Face]]:
    """The image (turned upright when it was sent turned, as the worker does) and its faces,
    whose boxes are in that image."""
    image = decode_image(path.read_bytes(), max_pixels)
    if whole:
        return image, [whole_face(image)]
    faces, upright, _ = upright_faces(image)
    return upright, faces


def predict_files(
    classifier: Predictor,
    paths: Iterable[Path],
    *,
    whole: bool = False,
    keep_images: bool = False,
    max_pixels: int = 40_000_000,
    chunk: int = 128,
) -> Iterator[ImageResult]:
    """One result per file, in order; the faces of `chunk` files go through the model at once.
    A file that cannot be read or is no image gets a result with its error and the rest go on."""
    chunk = 8 if keep_images else chunk  # decoded photos can be large: hold few at a time
    files = list(expand_paths(paths))
    for start in range(0, len(files), chunk):
        results = []
        for path in files[start : start + chunk]:
            try:
                image, faces = _faces_of(path, whole, max_pixels)
            except (OSError, ImageError) as exc:
                results.append(
                    ImageResult(path, [], np.zeros((0, len(CLASSES)), np.float32), str(exc))
                )
                continue
            size = (image.shape[1], image.shape[0])
            results.append(
                ImageResult(
                    path, faces, np.zeros((0, len(CLASSES)), np.float32), image=image, size=size
                )
            )
        crops = [face.crop for r in results for face in r.faces]
        probs = classifier.predict(np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8))
        offset = 0
        for result in results:
            result.probs = probs[offset : offset + len(result.faces)]
            offset += len(result.faces)
            if not keep_images:
                result.image = None
            yield result
