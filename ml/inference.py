"""Classifying batches of 48×48 faces with a model's LiteRT flatbuffer.

Serving needs neither TensorFlow nor Keras: every packaged or registered model carries a
float32 flatbuffer converted from its Keras file (ml/keras_classifier.py), run here through
LiteRT, the runtime that already runs the face detector. The worker, `emobot predict` and
`emobot evaluate` load only this module's side.
"""

import json
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from emobot.labels import CLASSES
from ml.preprocess import FACE_SIZE, standardise

# Batches are padded up to one of these sizes: one interpreter per size is planned once,
# instead of re-planning for every batch length the worker happens to collect, and more faces
# go in several calls. Larger batches are no faster through XNNPACK on a CPU, while each
# interpreter's buffers grow with its batch (about 13 MB at 8 faces, 41 MB at 64).
BUCKETS = (1, 8, 16)
FLATBUFFER_SUFFIX = ".tflite"
# The model runs on a thread of the worker beside the detection threads; two threads halve a
# batch's time on two cores and cost nothing while idle.
THREADS = 2


class Predictor(Protocol):
    """What evaluation and the worker need of a model, Keras-backed or LiteRT-backed."""

    version: int | None
    name: str

    def predict(self, faces: np.ndarray) -> np.ndarray: ...


class MissingFlatbuffer(FileNotFoundError):
    """A model file without the LiteRT flatbuffer that serving runs."""


def shipped_model_path() -> Path:
    """The shipped Keras model (training starts from it); its flatbuffer lies beside it."""
    return Path(__file__).parent / "shipped" / "emotion.keras"


def flatbuffer_path(model_path: Path) -> Path:
    """Where a model file's flatbuffer lies: the same name with the `.tflite` suffix."""
    return model_path.with_suffix(FLATBUFFER_SUFFIX)


def flatbuffer_key(blob_key: str) -> str:
    """The blob store key of a registered model's flatbuffer, beside its Keras file."""
    return str(PurePosixPath(blob_key).with_suffix(FLATBUFFER_SUFFIX))


def card_unsure_below(path: Path) -> float | None:
    """The threshold in the card beside a model file (`model_card.json`, as packaging writes
    it: ml/shipped has one), if there is one."""
    card = path.with_name("model_card.json")
    if not card.is_file():
        return None
    value = (json.loads(card.read_text()).get("calibration") or {}).get("unsure_below")
    return float(value) if isinstance(value, int | float) else None


def bucket(n: int) -> int:
    return next((b for b in BUCKETS if b >= n), BUCKETS[-1])


def predict_padded(
    faces: np.ndarray, run: Callable[[np.ndarray], np.ndarray], pixels: bool = True
) -> np.ndarray:
    """(N, 48, 48) uint8 faces → (N, 4) probabilities, cut into batches of at most
    BUCKETS[-1] faces, each padded up to its bucket for `run` (a model's call on one padded
    batch, whatever runs it). `pixels`: the model standardises its input itself (ml/layers.py)
    and takes the uint8 faces; else (a flatbuffer converted before that) they are
    standardised here."""
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must be (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
    if len(faces) == 0:
        return np.zeros((0, len(CLASSES)), np.float32)
    x = faces.astype(np.uint8, copy=False)[..., None] if pixels else standardise(faces)
    out = []
    for start in range(0, len(x), BUCKETS[-1]):
        chunk = x[start : start + BUCKETS[-1]]
        padded = np.zeros((bucket(len(chunk)), *chunk.shape[1:]), x.dtype)
        padded[: len(chunk)] = chunk
        out.append(np.asarray(run(padded))[: len(chunk)])
    return np.concatenate(out).astype(np.float32, copy=False)


class Classifier:
    """A LiteRT flatbuffer: (N, 48, 48) uint8 faces → (N, 4) probabilities in CLASSES order."""

    def __init__(
        self,
        flatbuffer: Path,
        version: int | None,
        name: str,
        unsure_below: float | None = None,
    ):
        self.flatbuffer = flatbuffer
        self.version = version
        self.name = name
        # The top probability below which this model's answer is unsure (its calibration);
        # None: the worker's UNSURE_BELOW setting applies.
        self.unsure_below = unsure_below
        self._interpreters: dict[int, Interpreter] = {}
        # Read once for every batch size's interpreter: each mapping the file itself would
        # count its 5 MB in the worker's resident memory again.
        self._content = flatbuffer.read_bytes()
        # An interpreter is not safe across threads; calls come from one at a time anyway.
        self._lock = threading.Lock()
        first = self._interpreter(1)
        outputs = int(first.get_output_details()[0]["shape"][-1])
        if outputs != len(CLASSES):
            raise ValueError(f"{name}: {outputs} outputs, expected {len(CLASSES)}")
        # uint8 input: the flatbuffer standardises the faces itself (converted since
        # preprocessing moved into the model); float32: it expects them standardised.
        self.takes_pixels = first.get_input_details()[0]["dtype"] == np.uint8

    @classmethod
    def load(
        cls, path: Path, version: int | None = None, unsure_below: float | None = None
    ) -> "Classifier":
        """`path`: a flatbuffer, or a Keras model file with its flatbuffer beside it."""
        flatbuffer = path if path.suffix == FLATBUFFER_SUFFIX else flatbuffer_path(path)
        if not flatbuffer.is_file():
            raise MissingFlatbuffer(
                f"{path}: no LiteRT flatbuffer at {flatbuffer} "
                "(`emobot convert MODEL.keras` writes it)"
            )
        stem = path.stem if version is None else f"v{version}"
        name = f"{stem} ({path})" if version is None else stem
        if unsure_below is None:
            unsure_below = card_unsure_below(path)
        return cls(flatbuffer, version, name, unsure_below)

    def _interpreter(self, size: int) -> Interpreter:
        interpreter = self._interpreters.get(size)
        if interpreter is None:
            interpreter = Interpreter(model_content=self._content, num_threads=THREADS)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [size, FACE_SIZE, FACE_SIZE, 1])
            interpreter.allocate_tensors()
            self._interpreters[size] = interpreter
        return interpreter

    def predict(self, faces: np.ndarray) -> np.ndarray:
        with self._lock:
            return predict_padded(faces, self._run, self.takes_pixels)

    def _run(self, padded: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter(len(padded))
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], padded)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
