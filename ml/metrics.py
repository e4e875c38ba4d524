"""The fixed evaluation protocol's numbers (the sets are listed in ml/evaluate.py): accuracy,
balanced accuracy, per-class recall, the confusion matrix, and the seed-balanced subsample of
test-4 (the original project's test counts, drawn with a fixed seed)."""

from typing import Any

import numpy as np

from emobot.labels import CLASS_INDEX, CLASSES

SEED_BALANCED_COUNTS = {"negative": 1104, "happy": 993, "neutral": 958, "surprise": 831}
SEED_BALANCED_SEED = 2013


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Rows are true classes, columns predicted ones, in CLASSES order."""
    k = len(CLASSES)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def summarise_predictions(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """As `summarise`, from predicted classes; a prediction of -1 (no face found in a photo)
    is wrong whatever the truth, and has its own count per true class (`no_face`)."""
    missing = y_pred < 0
    cm = confusion_matrix(y_true[~missing], y_pred[~missing])
    support = np.bincount(y_true, minlength=len(CLASSES))
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(CLASSES)), where=support > 0)
    present = support > 0
    result: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "recall": {name: float(r) for name, r in zip(CLASSES, recall, strict=True)},
        "confusion_matrix": cm.tolist(),
    }
    if missing.any():
        result["no_face"] = np.bincount(y_true[missing], minlength=len(CLASSES)).tolist()
    return result


def selective(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, threshold: float
) -> dict[str, float]:
    """How the answers fare when faces below `threshold` get an unsure answer instead of a
    label: the share answered with a label, and the accuracy and balanced accuracy on those.
    A photo with no face (y_pred -1, confidence 0) is never answered with a label."""
    sure = confidence >= threshold
    right = (y_pred == y_true) & sure
    support = np.bincount(y_true[sure], minlength=len(CLASSES))
    hits = np.bincount(y_true[right], minlength=len(CLASSES))
    present = support > 0
    return {
        "threshold": float(threshold),
        "answered": float(sure.mean()) if len(sure) else 0.0,
        "accuracy": float(right.sum() / sure.sum()) if sure.any() else 0.0,
        "balanced_accuracy": float((hits[present] / support[present]).mean())
        if present.any()
        else 0.0,
    }


def seed_balanced_indices(y_true: np.ndarray) -> np.ndarray:
    """The fixed subsample of test-4 with the original project's per-class counts."""
    rng = np.random.default_rng(SEED_BALANCED_SEED)
    picked = []
    for name, count in SEED_BALANCED_COUNTS.items():
        members = np.flatnonzero(y_true == CLASS_INDEX[name])
        picked.append(rng.choice(members, size=min(count, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def summarise(
    y_true: np.ndarray,
    probs: np.ndarray,
    seed_balanced: bool = True,
    unsure_below: float | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall and the confusion matrix as plain JSON;
    with `unsure_below`, also how the confident answers fare (`selective`)."""
    y_pred = probs.argmax(axis=1)
    result = summarise_predictions(y_true, y_pred)
    if unsure_below is not None:
        result["confident"] = selective(y_true, y_pred, probs.max(axis=1), unsure_below)
    if seed_balanced:
        idx = seed_balanced_indices(y_true)
        result["seed_balanced_accuracy"] = float((y_pred[idx] == y_true[idx]).mean())
    return result
