"""The fixed evaluation protocol applied to a classifier, and its report as text.

- test-4: every FER2013 test image, FER2013's own labels in 4 classes;
- ferplus-test: the test images with a FER+ majority emotion, labelled by it (ml.ferplus);
- real photos: labelled photos (`<class>/<file>` in a folder or a zip, as realphotos-dev.zip)
  through the whole pipeline, detection included: each photo's largest face, a photo without
  a face found counting as wrong.
"""

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emobot.labels import CLASS_INDEX
from ml.dataset import to_face
from ml.faces import ImageError, decode_image
from ml.faceset import Faces
from ml.fer2013 import IMAGE_SUFFIXES, iter_archive
from ml.ferplus import Votes, read_votes
from ml.inference import Predictor
from ml.metrics import selective, summarise, summarise_predictions
from ml.upright import upright_faces


def read_test_split(archive: Path) -> Faces:
    """test-4: every file of the archive's test split, in the order `load_archive` gives them
    (the seed-balanced subsample depends on that order). Train images are not decoded."""
    faces, labels = [], []
    for f in iter_archive(archive):
        if f.split == "test":
            faces.append(to_face(f.data))
            labels.append(CLASS_INDEX[f.label])
    if not faces:
        raise ValueError(f"{archive} has no test split")
    return Faces(np.stack(faces), np.array(labels, np.int64))


def read_ferplus_test(archive: Path, votes: dict[str, Votes]) -> Faces:
    """ferplus-test: the test files whose FER+ majority is an emotion, ambiguous duplicates
    left out, labelled by that majority."""
    faces, labels = [], []
    for f in iter_archive(archive):
        v = votes.get(f.name)
        if f.split == "test" and v and not v.ambiguous_duplicate:
            label = v.majority()
            if label is not None:
                faces.append(to_face(f.data))
                labels.append(label)
    if not faces:
        raise ValueError(f"no test file of {archive} has FER+ votes")
    return Faces(np.stack(faces), np.array(labels, np.int64))


@dataclass
class LabelledPhoto:
    name: str
    data: bytes
    label: int


def read_labelled_photos(path: Path) -> list[LabelledPhoto]:
    """Photos in `<class>/<file>` folders, in a folder or a zip; a zip's `labels.csv` (columns
    `file`, `label`), where there is one, gives the labels instead."""
    if path.is_dir():
        files: Iterator[tuple[str, bytes]] = (
            (str(p.relative_to(path)), p.read_bytes())
            for p in sorted(path.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
        return [LabelledPhoto(n, d, CLASS_INDEX[n.split("/")[0]]) for n, d in files]
    with zipfile.ZipFile(path) as archive:
        if "labels.csv" in archive.namelist():
            rows = csv.DictReader(io.TextIOWrapper(archive.open("labels.csv"), "utf-8"))
            labels = {r["file"]: r["label"] for r in rows}
        else:
            labels = {
                n: n.split("/")[0]
                for n in archive.namelist()
                if n.lower().endswith(IMAGE_SUFFIXES) and n.split("/")[0] in CLASS_INDEX
            }
        return [
            LabelledPhoto(n, archive.read(n), CLASS_INDEX[label])
            for n, label in sorted(labels.items())
        ]


def real_photo_faces(photos: list[LabelledPhoto]) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Each photo's largest face as the worker crops it (turned upright first when the photo
    was taken turned; None where none is found), and the labels."""
    crops: list[np.ndarray | None] = []
    for photo in photos:
        try:
            faces = upright_faces(decode_image(photo.data))[0]
        except ImageError:
            faces = []
        largest = max(faces, key=lambda f: f.box[2] * f.box[3], default=None)
        crops.append(None if largest is None else largest.crop)
    return crops, np.array([p.label for p in photos], np.int64)


def evaluate_real(
    classifier: Predictor,
    crops: list[np.ndarray | None],
    labels: np.ndarray,
    unsure_below: float | None = None,
) -> dict[str, Any]:
    """Balanced accuracy and the rest over real photos; a photo without a face is wrong (and,
    with `unsure_below`, never a confident answer)."""
    found = [c for c in crops if c is not None]
    probs = classifier.predict(np.stack(found) if found else np.zeros((0, 48, 48), np.uint8))
    predicted, confident = iter(probs.argmax(axis=1)), iter(probs.max(axis=1))
    y_pred = np.array([next(predicted) if c is not None else -1 for c in crops], np.int64)
    confidence = np.array([next(confident) if c is not None else 0.0 for c in crops])
    result = summarise_predictions(labels, y_pred)
    result["face_found"] = len(found) / max(len(crops), 1)
    if unsure_below is not None:
        result["confident"] = selective(labels, y_pred, confidence, unsure_below)
    return result


def evaluate(
    classifier: Predictor,
    test: Faces,
    seed_balanced: bool = True,
    mirrored: bool = False,
    unsure_below: float | None = None,
) -> dict[str, Any]:
    """`summarise` over the classifier's answers on `test`; `mirrored` averages each face's
    probabilities with its mirror image's (test-time augmentation, for comparison only)."""
    probs = classifier.predict(test.x)
    if mirrored:
        probs = (probs + classifier.predict(test.x[:, :, ::-1])) / 2
    return summarise(test.y, probs, seed_balanced=seed_balanced, unsure_below=unsure_below)


@dataclass
class Protocol:
    """The fixed protocol's data, read (and the real photos' faces found) once, for measuring
    several models alike: `test_4`, `ferplus_test` and the real photos' largest faces (None
    where none was found) with their labels; a set whose data is missing is None."""

    test_4: Faces | None = None
    ferplus_test: Faces | None = None
    real_crops: list[np.ndarray | None] | None = None
    real_labels: np.ndarray | None = None

    @classmethod
    def load(cls, archive: Path | None, ferplus: Path | None, photos: Path | None) -> "Protocol":
        """Whatever of the data is at hand: the FER2013 archive (test-4), and the FER+ votes
        (ferplus-test), a labelled photo set (real photos)."""
        protocol = cls()
        if archive is not None and archive.is_file():
            protocol.test_4 = read_test_split(archive)
            if ferplus is not None and ferplus.is_file():
                protocol.ferplus_test = read_ferplus_test(archive, read_votes(ferplus))
        if photos is not None and photos.exists():
            protocol.real_crops, protocol.real_labels = real_photo_faces(
                read_labelled_photos(photos)
            )
        return protocol

    def real_faces(self) -> Faces | None:
        """The real photos' faces that were found, as a validation set."""
        if self.real_crops is None or self.real_labels is None:
            return None
        found = [i for i, c in enumerate(self.real_crops) if c is not None]
        if not found:
            return None
        return Faces(np.stack([self.real_crops[i] for i in found]), self.real_labels[found])

    def evaluate(self, classifier: Predictor, unsure_below: float | None = None) -> dict[str, Any]:
        """`test_4`, `ferplus_test`, `realphotos`: those whose data is at hand. With
        `unsure_below`, each also says how the confident answers fare (`confident`)."""
        metrics: dict[str, Any] = {}
        if self.test_4 is not None:
            metrics["test_4"] = evaluate(classifier, self.test_4, unsure_below=unsure_below)
        if self.ferplus_test is not None:
            metrics["ferplus_test"] = evaluate(
                classifier, self.ferplus_test, seed_balanced=False, unsure_below=unsure_below
            )
        if self.real_crops is not None and self.real_labels is not None:
            metrics["realphotos"] = evaluate_real(
                classifier, self.real_crops, self.real_labels, unsure_below
            )
        return metrics


def evaluate_protocol(
    classifier: Predictor,
    archive: Path | None,
    ferplus: Path | None,
    photos: Path | None,
    unsure_below: float | None = None,
) -> dict[str, Any]:
    """The fixed protocol on whatever of its data is at hand (see Protocol)."""
    return Protocol.load(archive, ferplus, photos).evaluate(classifier, unsure_below)
