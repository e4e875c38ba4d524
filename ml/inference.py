"""Loading a model once and classifying batches of 48×48 faces in one compiled call."""

from pathlib import Path

import keras
import numpy as np

from emobot.labels import CLASSES
from ml.preprocess import FACE_SIZE, standardise

# Batches are padded up to one of these sizes, so the compiled function is traced at most
# once per size instead of once per distinct batch length the worker happens to collect.
BUCKETS = (1, 8, 32, 64, 128, 256)


def shipped_model_path() -> Path:
    return Path(__file__).parent / "shipped" / "emotion.keras"


def bucket(n: int) -> int:
    return next((b for b in BUCKETS if b >= n), BUCKETS[-1])


class Classifier:
    """A loaded emotion model: (N, 48, 48) uint8 faces → (N, 4) probabilities in CLASSES order."""

    def __init__(self, model: keras.Model, version: int | None, name: str):
        self.model = model
        self.version = version
        self.name = name
        outputs = model.output_shape[-1]
        if outputs != len(CLASSES):
            raise ValueError(f"{name}: {outputs} outputs, expected {len(CLASSES)}")

    @classmethod
    def load(cls, path: Path, version: int | None = None) -> "Classifier":
        model = keras.models.load_model(path, compile=False)
        name = f"{model.name} v{version}" if version is not None else f"{model.name} ({path})"
        return cls(model, version, name)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must be (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
        n = len(faces)
        if n == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        x = standardise(faces)
        out = []
        # More faces than the largest bucket (a photo of a crowd) go in several calls.
        for start in range(0, n, BUCKETS[-1]):
            chunk = x[start : start + BUCKETS[-1]]
            size = bucket(len(chunk))
            padded = np.zeros((size, *chunk.shape[1:]), np.float32)
            padded[: len(chunk)] = chunk
            # predict_on_batch runs the model's compiled predict function once, without the
            # per-call dataset machinery of model.predict.
            probs = np.asarray(self.model.predict_on_batch(padded))
            out.append(probs[: len(chunk)])
        return np.concatenate(out).astype(np.float32, copy=False)
