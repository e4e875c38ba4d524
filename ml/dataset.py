"""Face arrays for training and evaluation, read from the FER2013 archive."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emobot.labels import CLASS_INDEX
from ml.faces import align, detect
from ml.faceset import Faces
from ml.fer2013 import (
    ArchiveFile,
    ArchiveReport,
    decode_grey,
    group_by_content,
    is_blank,
    iter_archive,
)
from ml.ferplus import Votes, mean_distribution
from ml.preprocess import FACE_SIZE


@dataclass
class ArchiveFaces:
    # Distinct, no test copy, no conflicting labels, no blanks; with FER+ votes, their vote
    # shares as targets and neither "not a face" nor "unknown" by majority.
    train: Faces
    test: Faces  # the whole test split, every file: the fixed protocol's test-4
    test_names: list[str]
    report: ArchiveReport


def to_face(data: bytes) -> np.ndarray:
    image = decode_grey(data)
    if image is None:
        raise ValueError("not an image")
    if image.shape != (FACE_SIZE, FACE_SIZE):
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _faces(pairs: list[tuple[np.ndarray, int]], targets: list[np.ndarray] | None = None) -> Faces:
    x = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    y = np.array([p[1] for p in pairs], np.int64)
    return Faces(x, y, np.stack(targets).astype(np.float32) if targets else None)


def load_archive(path: Path, votes: dict[str, Votes] | None = None) -> ArchiveFaces:
    files: list[ArchiveFile] = list(iter_archive(path))
    groups = group_by_content(files)
    decoded = {g.sha256: to_face(g.first.data) for g in groups}
    blank = {sha for sha, img in decoded.items() if is_blank(img)}
    trainable = [
        g for g in groups if g.split == "train" and not g.conflict and g.sha256 not in blank
    ]
    test_files = [f for f in files if f.split == "test"]
    test = _faces([(decoded[f.sha256], CLASS_INDEX[f.label]) for f in test_files])
    report = ArchiveReport.build(files, groups, blank)
    if votes is None:
        train = _faces([(decoded[g.sha256], CLASS_INDEX[g.label]) for g in trainable])
        return ArchiveFaces(train, test, [f.name for f in test_files], report)
    pairs, targets = [], []
    for g in trainable:
        # Byte-identical copies may carry different votes: their shares, averaged.
        target = mean_distribution(v for f in g.files if (v := votes.get(f.name)))
        if target is not None:
            pairs.append((decoded[g.sha256], int(np.argmax(target))))
            targets.append(target)
    return ArchiveFaces(_faces(pairs, targets), test, [f.name for f in test_files], report)


def aligned_like_inference(faces: np.ndarray) -> np.ndarray:
    """FER2013 faces re-cut the way inference cuts faces from photos (ml.faces.align), so that
    training sees the framing the model meets: each face, enlarged twice and framed by its
    own edge pixels, goes through the detector and the alignment. A face the detector misses
    (about 2 %) stays as it is."""
    out = faces.copy()
    margin = FACE_SIZE // 3
    for i, face in enumerate(faces):
        big = cv2.resize(face, (2 * FACE_SIZE, 2 * FACE_SIZE), interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(big, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
        found = detect(framed)
        if found:
            best = max(found, key=lambda d: d.score)
            out[i] = align(framed, best.keypoints[[0, 1, 3]])
    return out
