"""The fixed evaluation protocol (DESIGN.md) applied to a classifier, and its report as text."""

from pathlib import Path
from typing import Any

import numpy as np

from ml.dataset import to_face
from ml.fer2013 import iter_archive
from ml.inference import Classifier
from ml.labels import CLASS_INDEX, CLASSES
from ml.metrics import summarise
from ml.training import Faces

CHUNK = 256


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


def predict_all(classifier: Classifier, faces: np.ndarray) -> np.ndarray:
    parts = [classifier.predict(faces[i : i + CHUNK]) for i in range(0, len(faces), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, len(CLASSES)), np.float32)


def evaluate(classifier: Classifier, test: Faces, seed_balanced: bool = True) -> dict[str, Any]:
    return summarise(test.y, predict_all(classifier, test.x), seed_balanced=seed_balanced)


def format_metrics(metrics: dict[str, Any]) -> str:
    """Accuracy, balanced accuracy, per-class recall, seed-balanced accuracy and the confusion
    matrix as a plain-text table (the CLI and the trainer's chat report use it)."""
    lines = [
        f"images                  {metrics['n']:>8,}",
        f"accuracy                {metrics['accuracy']:>8.4f}",
        f"balanced accuracy       {metrics['balanced_accuracy']:>8.4f}",
    ]
    if "seed_balanced_accuracy" in metrics:
        lines.append(f"seed-balanced accuracy  {metrics['seed_balanced_accuracy']:>8.4f}")
    lines.append("recall")
    lines += [f"  {name:<22}{metrics['recall'][name]:>8.4f}" for name in CLASSES]
    width = max(len(c) for c in CLASSES) + 1
    lines.append("confusion (rows true, columns predicted)")
    lines.append(" " * (width + 2) + "".join(f"{c[:8]:>9}" for c in CLASSES))
    for name, row in zip(CLASSES, metrics["confusion_matrix"], strict=True):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)
