"""Training a CNN over labelled face arrays, whatever their source (database or archive)."""

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from emobot.labels import CLASSES
from ml.architectures import ARCHITECTURES
from ml.checkpoint import EpochCheckpoint, history_of
from ml.ensemble import first_member
from ml.faceset import Faces
from ml.inference import Classifier
from ml.keras_classifier import KerasClassifier
from ml.layers import with_preprocessing
from ml.metrics import summarise
from ml.params import TrainConfig
from ml.preprocess import FACE_SIZE

EpochCallback = Callable[[int, dict[str, float]], None]


def split_validation(train: Faces, fraction: float, seed: int) -> tuple[Faces, Faces]:
    """A stratified validation split carved from train: every choice is made on it, not on test."""
    rng = np.random.default_rng(seed)
    val_idx = []
    for k in range(len(CLASSES)):
        members = np.flatnonzero(train.y == k)
        val_idx.append(rng.choice(members, size=round(len(members) * fraction), replace=False))
    val = np.sort(np.concatenate(val_idx))
    keep = np.setdiff1d(np.arange(len(train)), val)
    return train.take(keep), train.take(val)


def taught(faces: Faces, teacher: Path, weight: float) -> Faces:
    """`faces` whose targets are `weight` of the teacher's answers (its flatbuffer's, on the
    faces as cropped) and the rest their own: knowledge distillation (Hinton et al., 2015) of,
    say, an ensemble into one network. `y`, by which classes are weighted, stays the label."""
    answers = Classifier.load(teacher).predict(faces.x)
    targets = (1 - weight) * faces.soft_targets() + weight * answers
    return Faces(faces.x, faces.y, targets.astype(np.float32), faces.aligned)


def cap_per_class(train: Faces, cap: int, seed: int) -> Faces:
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(train.y == k))[:cap] for k in range(len(CLASSES))]
    return train.take(np.sort(np.concatenate(idx)))


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse class frequency, scaled so that the average weight per image is 1."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
    present = counts > 0
    weights = np.where(present, len(y) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {k: float(w) for k, w in enumerate(weights)}


def augment(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What differs between a FER2013 face and a face cut from someone's phone photo: a flip,
    rotation ±15°, scale 0.85–1.15, shift ±10 %, brightness and contrast; and, each for a third
    of the faces, blur (σ 0.3–1.2 px), sensor noise and JPEG compression (quality 30–90).

    Done in NumPy/OpenCV outside the model: Keras 3.15's RandomRotation, RandomZoom and the
    like carry `supports_jit = False`, which switches JIT off for the whole model under JAX
    (about 100× slower per epoch on a GPU).
    """
    out = np.empty_like(faces)
    centre = (FACE_SIZE / 2, FACE_SIZE / 2)
    for i, face in enumerate(faces):
        matrix = cv2.getRotationMatrix2D(centre, rng.uniform(-15, 15), rng.uniform(0.85, 1.15))
        matrix[:, 2] += rng.uniform(-0.1, 0.1, 2) * FACE_SIZE
        if rng.random() < 0.5:
            matrix[0] = -matrix[0]
            matrix[0, 2] += FACE_SIZE - 1
        warped = cv2.warpAffine(
            face, matrix, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_REFLECT_101
        ).astype(np.float32)
        if rng.random() < 1 / 3:
            warped = cv2.GaussianBlur(warped, (0, 0), rng.uniform(0.3, 1.2))
        warped = (warped - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
        if rng.random() < 1 / 3:
            warped += rng.normal(0, rng.uniform(2, 8), warped.shape)
        warped = np.clip(warped, 0, 255).astype(np.uint8)
        if rng.random() < 1 / 3:
            quality = int(rng.integers(30, 91))
            encoded = cv2.imencode(".jpg", warped, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            warped = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        out[i] = warped
    return out


class FaceBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches of uint8 faces (the model standardises them) with soft
    targets and per-sample class weights (the weight of each face's most likely class).

    The order of an epoch and the augmentation of each batch follow from (seed, epoch,
    batch) alone, so a run resumed at an epoch sees what it would have seen uninterrupted
    (`epoch` is set from the checkpoint) whatever order the batches are fetched in."""

    def __init__(self, faces: Faces, batch_size: int, weights: dict[int, float], seed: int):
        super().__init__()
        self.faces = faces
        self.targets = faces.soft_targets()
        self.batch_size = batch_size
        self.sample_weight = np.array([weights[int(k)] for k in faces.y], np.float32)
        self.seed = seed
        self.epoch = 0
        self._orders: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.faces) / self.batch_size)

    def _order(self) -> np.ndarray:
        if self._orders is None or self._orders[0] != self.epoch:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.faces))
            self._orders = (self.epoch, order)
        return self._orders[1]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self._order()[i * self.batch_size : (i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = self.faces.x[idx]
        if self.faces.aligned is not None:
            x = np.where(rng.random(len(idx))[:, None, None] < 0.5, self.faces.aligned[idx], x)
        return augment(x, rng)[..., None], self.targets[idx], self.sample_weight[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1


class ValidationMetrics(keras.callbacks.Callback):
    """Adds balanced accuracy (the headline metric) to the epoch logs: `val_bal_acc` on the
    validation split, `real_bal_acc` on faces cut from real photos where given, and
    `val_score`, the mean of the two, by which the best epoch is chosen."""

    def __init__(self, val: Faces, real: Faces | None = None):
        super().__init__()
        self.val = val
        self.real = real

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        scores = [self._balanced_accuracy(self.val)]
        logs["val_bal_acc"] = scores[0]
        if self.real is not None:
            scores.append(self._balanced_accuracy(self.real))
            logs["real_bal_acc"] = scores[1]
        logs["val_score"] = float(np.mean(scores))
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _balanced_accuracy(self, faces: Faces) -> float:
        probs = KerasClassifier(self.model, None, self.model.name).predict(faces.x)
        return summarise(faces.y, probs, seed_balanced=False)["balanced_accuracy"]


class TrainingInterrupted(Exception):
    """Training was asked to stop before its schedule ended; its last finished epoch is in
    the work folder's checkpoint, from which the same call resumes."""


class StopWhenAsked(keras.callbacks.Callback):
    """Ends training at the next batch when `asked()` says so (a process being stopped)."""

    def __init__(self, asked: Callable[[], bool]):
        super().__init__()
        self.asked = asked

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.asked():
            raise TrainingInterrupted


class ReportProgress(keras.callbacks.Callback):
    def __init__(self, on_epoch: EpochCallback):
        super().__init__()
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_epoch(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


def read_history(path: Path) -> dict[str, list[float]]:
    """Every epoch of a history CSV, those before a resume included."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in rows[0] if k != "epoch"] if rows else []
    return {k: [round(float(r[k]), 5) for r in rows] for k in keys}


def build_model(config: TrainConfig, steps_per_epoch: int) -> keras.Model:
    model = ARCHITECTURES[config.arch]()
    if config.init:
        # A file saved before preprocessing moved into the model has the same weights; an
        # ensemble (ml/ensemble.py) gives its first member.
        loaded = keras.models.load_model(config.init, compile=False)
        start = with_preprocessing(first_member(loaded))
        model.set_weights(start.get_weights())
    if config.arch == "seed_cnn":
        # Faithful to the original: Adam with a plateau schedule (ReduceLROnPlateau below),
        # starting at `learning_rate`.
        optimizer: keras.optimizers.Optimizer = keras.optimizers.Adam(config.learning_rate)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=steps_per_epoch * max(config.epochs - 1, 1),
            warmup_target=config.learning_rate,
            warmup_steps=steps_per_epoch,
        )
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=5e-4)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@dataclass
class Trained:
    """A finished training: the best epoch's model, every epoch's logs, what it was trained
    on, and the validation split the epoch was chosen on (calibration fits on it too)."""

    model: keras.Model
    history: dict[str, list[float]]
    summary: dict[str, Any]
    val: Faces


def train(
    train_faces: Faces,
    config: TrainConfig,
    workdir: Path,
    on_epoch: EpochCallback | None = None,
    real: Faces | None = None,
    stop_asked: Callable[[], bool] | None = None,
    resume: bool = True,
) -> Trained:
    """Fit a model, checkpointing every epoch in `workdir` (ml/checkpoint.py), and keep the
    best epoch by `val_score` (see ValidationMetrics). A run cut off in `workdir` continues
    from its last checkpoint when `resume` (RunMismatch when it had other parameters); else
    it starts over. `real`: faces cut from labelled real photos, a second validation set.
    `stop_asked`: TrainingInterrupted is raised at the first batch after it says True."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _start_over(workdir)
    keras.utils.set_random_seed(config.seed)
    fit_faces, val_faces = split_validation(train_faces, config.val_fraction, config.split_seed)
    if config.balance:
        fit_faces = cap_per_class(fit_faces, config.balance, config.seed)
    if config.teacher:
        fit_faces = taught(fit_faces, Path(config.teacher), config.teacher_weight)
    weights = (
        class_weights(fit_faces.y)
        if config.class_weights
        else dict.fromkeys(range(len(CLASSES)), 1.0)
    )
    batches = FaceBatches(fit_faces, config.batch_size, weights, config.seed)
    model = build_model(config, len(batches))
    plateau = (
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5)
        if config.arch == "seed_cnn"
        else None
    )
    checkpoint = EpochCheckpoint(workdir, asdict(config), batches, config.patience, plateau=plateau)
    initial_epoch = checkpoint.restore(model)
    # Order matters: the scores first, the plateau schedule before its counters are saved,
    # the checkpoint before the epoch is reported (a reported epoch is never lost).
    callbacks: list[keras.callbacks.Callback] = [ValidationMetrics(val_faces, real)]
    callbacks += [plateau] if plateau is not None else []
    callbacks.append(checkpoint)
    if on_epoch is not None:
        callbacks.append(ReportProgress(on_epoch))
    if stop_asked is not None:
        callbacks.append(StopWhenAsked(stop_asked))
    started = time.perf_counter()
    if not checkpoint.state.get("finished"):
        model.fit(
            batches,
            validation_data=(val_faces.x[..., None], val_faces.soft_targets()),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=2,
        )
        checkpoint.finish()
    history = history_of(checkpoint.state)
    summary = {
        "config": asdict(config),
        "train_counts": fit_faces.counts(),
        "val_counts": val_faces.counts(),
        "targets": "FER+ vote shares" if fit_faces.targets is not None else "labels",
        "aligned_views": fit_faces.aligned is not None,
        "class_weights": {CLASSES[k]: round(w, 4) for k, w in weights.items()},
        "epochs_run": len(history.get("loss", [])),
        "resumed_at": initial_epoch or None,
        # This process's share: a resumed run's earlier part is not counted.
        "train_seconds": round(time.perf_counter() - started, 1),
        "parameters": model.count_params(),
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    best_path = checkpoint.best_path
    best = keras.models.load_model(best_path) if best_path.exists() else model
    return Trained(best, history, summary, val_faces)


def trained_in(workdir: Path, train_faces: Faces) -> Trained:
    """The finished training in `workdir`, read back (to package it again): its best model,
    history and summary, and the validation split its config carves from `train_faces`."""
    summary = json.loads((workdir / "summary.json").read_text())
    config = TrainConfig(**summary["config"])
    val = split_validation(train_faces, config.val_fraction, config.split_seed)[1]
    model = keras.models.load_model(workdir / "best.keras", compile=False)
    return Trained(model, read_history(workdir / "history.csv"), summary, val)


def _start_over(workdir: Path) -> None:
    """Forget a run cut off in `workdir`: its checkpoint, best model and history."""
    for name in ("best.keras", "history.csv", "summary.json"):
        (workdir / name).unlink(missing_ok=True)
    for old in (workdir / "checkpoint").glob("*"):
        old.unlink()
