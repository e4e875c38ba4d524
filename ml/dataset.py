"""Face arrays for training and evaluation, read from the FER2013 archive."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.fer2013 import (
    ArchiveFile,
    ArchiveReport,
    decode_grey,
    group_by_content,
    is_blank,
    iter_archive,
)
from ml.labels import CLASS_INDEX
from ml.preprocess import FACE_SIZE
from ml.training import Faces


@dataclass
class ArchiveFaces:
    train: Faces  # distinct, no test copy, no conflicting labels, no blanks
    test: Faces  # the whole test split, every file: the fixed protocol's test-4
    test_names: list[str]
    report: ArchiveReport


def to_face(data: bytes) -> np.ndarray:
    image = decode_grey(data)
    if image is None:
        raise ValueError("not an image")
    if image.shape != (FACE_SIZE, FACE_SIZE):
        import cv2

        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _faces(pairs: list[tuple[np.ndarray, str]]) -> Faces:
    x = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    return Faces(x, np.array([CLASS_INDEX[p[1]] for p in pairs], np.int64))


def load_archive(path: Path) -> ArchiveFaces:
    files: list[ArchiveFile] = list(iter_archive(path))
    groups = group_by_content(files)
    decoded = {g.sha256: to_face(g.first.data) for g in groups}
    blank = {sha for sha, img in decoded.items() if is_blank(img)}
    train = [
        (decoded[g.sha256], g.label)
        for g in groups
        if g.split == "train" and not g.conflict and g.sha256 not in blank
    ]
    test_files = [f for f in files if f.split == "test"]
    test = [(decoded[f.sha256], f.label) for f in test_files]
    return ArchiveFaces(
        train=_faces(train),
        test=_faces(test),
        test_names=[f.name for f in test_files],
        report=ArchiveReport.build(files, groups, blank),
    )
