"""A Keras model as a classifier (training, calibration), and its LiteRT flatbuffer for serving.

Packaging converts the inference model to a float32 flatbuffer and checks that both give the
same answers (`save_for_serving`): a model whose flatbuffer disagrees is never written out, so
the registry and `ml/shipped/` only ever hold pairs that agree.
"""

import tempfile
from pathlib import Path

import keras
import numpy as np

from emobot.labels import CLASSES
from ml.inference import Classifier, flatbuffer_path, predict_padded
from ml.layers import with_preprocessing
from ml.preprocess import FACE_SIZE

# The most the flatbuffer's probabilities may differ from Keras's on the parity faces.
PARITY_TOLERANCE = 1e-4


class ParityError(ValueError):
    """The flatbuffer does not answer as the Keras model does."""


class KerasClassifier:
    """A loaded Keras model: (N, 48, 48) uint8 faces → (N, 4) probabilities in CLASSES order.
    A model saved before preprocessing moved into the graph gets it put in front."""

    def __init__(self, model: keras.Model, version: int | None, name: str):
        self.model = with_preprocessing(model)
        self.version = version
        self.name = name
        outputs = model.output_shape[-1]
        if outputs != len(CLASSES):
            raise ValueError(f"{name}: {outputs} outputs, expected {len(CLASSES)}")

    @classmethod
    def load(cls, path: Path, version: int | None = None) -> "KerasClassifier":
        model = keras.models.load_model(path, compile=False)
        name = f"{model.name} v{version}" if version is not None else f"{model.name} ({path})"
        return cls(model, version, name)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        # predict_on_batch runs the compiled predict function once, without the per-call
        # dataset machinery of model.predict; padding keeps the traced shapes few.
        return predict_padded(faces, self.model.predict_on_batch)


def parity_faces(n: int = 32, seed: int = 0) -> np.ndarray:
    """Faces to compare a model and its flatbuffer on: smooth random shading plus noise, so
    that every layer sees varied, face-like ranges of values (no data set needed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE] / FACE_SIZE
    faces = []
    for _ in range(n):
        a, b, c = rng.uniform(-120, 120, 3)
        shade = 128 + a * xx + b * yy + c * np.sin(6 * xx * yy)
        faces.append(shade + rng.normal(0, 25, shade.shape))
    return np.clip(faces, 0, 255).astype(np.uint8)


def check_parity(model: keras.Model, flatbuffer: Path, faces: np.ndarray | None = None) -> float:
    """The largest difference between the two models' probabilities; ParityError when it is
    over PARITY_TOLERANCE or a face gets another label."""
    faces = parity_faces() if faces is None else faces
    expected = KerasClassifier(model, None, model.name).predict(faces)
    got = Classifier(flatbuffer, None, flatbuffer.name).predict(faces)
    worst = float(np.abs(expected - got).max())
    if worst > PARITY_TOLERANCE or (expected.argmax(1) != got.argmax(1)).any():
        raise ParityError(f"{flatbuffer}: differs from the Keras model by up to {worst:.2e}")
    return worst


def write_flatbuffer(model: keras.Model, flatbuffer: Path) -> Path:
    """Convert `model` to a float32 flatbuffer at `flatbuffer` once it is checked to answer as
    the model does (ParityError otherwise, and nothing is written)."""
    model = with_preprocessing(model)  # the flatbuffer takes uint8 faces, whatever the file
    flatbuffer.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=flatbuffer.parent) as tmp:
        converted = Path(tmp) / flatbuffer.name
        # Keras's own LiteRT export (through TensorFlow's converter), float32 as trained.
        model.export(str(converted), format="litert", verbose=False)
        check_parity(model, converted)
        converted.replace(flatbuffer)
    return flatbuffer


def save_for_serving(model: keras.Model, path: Path) -> Path:
    """Write `model` to `path` (.keras) and its checked flatbuffer beside it, both taking uint8
    faces; returns the flatbuffer's path."""
    model = with_preprocessing(model)
    flatbuffer = write_flatbuffer(model, flatbuffer_path(path))
    model.save(path)
    return flatbuffer


def convert_file(path: Path) -> Path:
    """Write the checked flatbuffer of the Keras model file at `path` beside it."""
    return write_flatbuffer(keras.models.load_model(path, compile=False), flatbuffer_path(path))
