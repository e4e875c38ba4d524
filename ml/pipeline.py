"""One way from training faces to a model that serves, for every training: over the FER2013
archive (`python -m ml.train_archive`) and over the database (`/retrain`, `emobot train`).

`make_release` trains (checkpointing every epoch, resumable), keeps the best epoch (on the
validation split carved from train, and the real photos' faces where given), calibrates it
(temperature and the unsure threshold, both fitted on those validation faces), packages the
inference model (float32, no optimizer state, preprocessing inside, and its LiteRT flatbuffer
checked against it) and measures what serves (the flatbuffer) by the fixed protocol at its
own threshold.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml.architectures import ARCHITECTURES
from ml.calibration import (
    calibrated,
    expected_calibration_error,
    fit_temperature,
    scaled,
    unsure_threshold,
)
from ml.evaluate import Protocol
from ml.faceset import Faces
from ml.inference import Classifier
from ml.keras_classifier import KerasClassifier, save_for_serving
from ml.params import TrainConfig
from ml.training import EpochCallback, Trained, train

MODEL_FILE = "emotion.keras"


@dataclass
class Release:
    """A packaged model: `path` (the inference-only Keras file; its flatbuffer beside it) and
    `served` (that flatbuffer loaded), its calibration and its protocol metrics."""

    path: Path
    served: Classifier
    trained: Trained
    calibration: dict[str, Any]
    metrics: dict[str, Any]


@contextmanager
def float32_layers() -> Iterator[None]:
    """New layers are float32 inside, whatever precision training set (`--bf16`): LiteRT's
    built-in ops take no bfloat16 layers."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


def inference_copy(model: keras.Model, arch: str) -> keras.Model:
    """The same network and weights in float32 (whatever precision trained it) and without
    optimizer state: a third of the file size."""
    with float32_layers():
        copy = ARCHITECTURES[arch]()
    copy.set_weights(model.get_weights())
    return copy


def calibrate(
    model: keras.Model, val: Faces, real: Faces | None, ferplus_test: Faces | None
) -> tuple[keras.Model, dict[str, Any]]:
    """`model` with its temperature fitted on the validation faces (the split carved from
    train and the real photos' faces), the expected calibration error before and after on each
    set, and the top probability below which a reply is unsure."""
    fit_on = [val] + ([real] if real is not None else [])
    classifier = KerasClassifier(model, None, model.name)
    probs = np.concatenate([classifier.predict(f.x) for f in fit_on])
    y = np.concatenate([f.y for f in fit_on])
    temperature = fit_temperature(probs, y)
    sets = {"validation": val, "realphotos": real, "ferplus_test": ferplus_test}
    ece = {}
    for name, faces in sets.items():
        if faces is not None and len(faces):
            p = classifier.predict(faces.x)
            ece[name] = {
                "before": round(expected_calibration_error(p, faces.y), 4),
                "after": round(expected_calibration_error(scaled(p, temperature), faces.y), 4),
            }
    return calibrated(model, temperature), {
        "temperature": round(temperature, 4),
        "unsure_below": unsure_threshold(scaled(probs, temperature), y),
        "fitted_on": ["validation"] + (["realphotos"] if real is not None else []),
        "expected_calibration_error": ece,
    }


def package(trained: Trained, arch: str, protocol: Protocol, out: Path) -> Release:
    """Package the trained model's float32 inference copy (see `release_of`)."""
    return release_of(inference_copy(trained.model, arch), trained, protocol, out)


def release_of(model: keras.Model, trained: Trained, protocol: Protocol, out: Path) -> Release:
    """Calibrate `model` on the validation faces `trained` was chosen on, write it and its
    flatbuffer to `out/MODEL_FILE`, and measure the flatbuffer (what serves) by the protocol
    at its threshold."""
    real = protocol.real_faces()
    with float32_layers():  # the calibration's layers
        model, calibration = calibrate(model, trained.val, real, protocol.ferplus_test)
    path = out / MODEL_FILE
    save_for_serving(model, path)
    served = Classifier.load(path)
    metrics = protocol.evaluate(served, calibration["unsure_below"])
    return Release(path, served, trained, calibration, metrics)


def make_release(
    train_faces: Faces,
    config: TrainConfig,
    workdir: Path,
    protocol: Protocol,
    *,
    on_epoch: EpochCallback | None = None,
    stop_asked: Callable[[], bool] | None = None,
    resume: bool = True,
) -> Release:
    """Train in `workdir` (resuming a run cut off there when `resume`), choose the epoch on
    validation and the protocol's real photos, calibrate, package into `workdir/release`,
    measure. See the module."""
    trained = train(
        train_faces,
        config,
        workdir,
        on_epoch=on_epoch,
        real=protocol.real_faces(),
        stop_asked=stop_asked,
        resume=resume,
    )
    return package(trained, config.arch, protocol, workdir / "release")
