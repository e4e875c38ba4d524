"""A training run over the database-backed dataset, from samples to a registered model.

Reads trainable samples from PostgreSQL and their images from the blob store (cached as arrays
per dataset version), trains with `ml.training.train`, evaluates on the database's test split
and, when the FER2013 archive is at hand, by the fixed protocol on test-4, then stores the
model and its pictures in the blob store and registers it (promoting it if asked and better).
"""

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import keras
import numpy as np

from db import registry
from db.engine import Storage
from db.samples import dataset_version
from db.training_set import SampleRef, test_refs, train_refs
from ml.architectures import ARCHITECTURES
from ml.dataset import to_face
from ml.evaluate import evaluate, read_test_split
from ml.faces import ImageError, crop_box, decode_image, whole_face
from ml.inference import Classifier
from ml.labels import CLASS_INDEX
from ml.metrics import summarise
from ml.preprocess import FACE_SIZE
from ml.report import confusion_png, learning_curve_png
from ml.training import Faces, TrainConfig, train

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], Awaitable[None]]
FETCH_CONCURRENCY = 16


@dataclass
class JobParams:
    """What a run may be asked for (CLI flags or `training_runs.params`)."""

    arch: str = "emonet"
    # About 25 minutes per 10 epochs of emonet over all of FER2013 on 2 CPU cores.
    epochs: int = 15
    balance: int = 0
    promote: bool = False
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; one of {', '.join(ARCHITECTURES)}")
        if not 1 <= self.epochs <= 500:
            raise ValueError(f"epochs must be 1–500, not {self.epochs}")
        if self.balance < 0 or self.batch_size < 1:
            raise ValueError("balance must be ≥ 0 and batch_size ≥ 1")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "JobParams":
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(sorted(unknown))}")
        return cls(**params)


@dataclass
class TrainingData:
    train: Faces
    test: Faces
    version: str
    skipped: int  # samples whose image could not be read


@dataclass
class JobResult:
    version: int
    model_id: int
    metrics: dict[str, Any]
    promoted: bool
    artifacts: dict[str, str]
    pictures: dict[str, bytes] = field(repr=False)


def sample_face(ref: SampleRef, data: bytes) -> np.ndarray:
    """A stored image as the 48×48 face it was labelled for."""
    if ref.source == "fer2013":
        return to_face(data)  # already a 48×48 face, decoded exactly as the archive reader does
    image = decode_image(data)
    return crop_box(image, ref.face_box) if ref.face_box else whole_face(image).crop


async def _faces(storage: Storage, refs: list[SampleRef]) -> tuple[Faces, int]:
    semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(ref: SampleRef) -> np.ndarray | None:
        async with semaphore:
            try:
                data = await storage.blobs.get(ref.blob_key)
                return await asyncio.to_thread(sample_face, ref, data)
            except (KeyError, ImageError, ValueError) as exc:
                log.warning("sample %s skipped: %s", ref.blob_key, exc)
                return None

    decoded = await asyncio.gather(*(one(ref) for ref in refs))
    kept = [(face, ref) for face, ref in zip(decoded, refs, strict=True) if face is not None]
    x = (
        np.stack([face for face, _ in kept])
        if kept
        else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    )
    y = np.array([CLASS_INDEX[ref.label] for _, ref in kept], np.int64)
    return Faces(x, y), len(refs) - len(kept)


async def load_training_data(storage: Storage, cache_dir: Path) -> TrainingData:
    """Train and test faces; decoded once per dataset version and kept in `cache_dir`."""
    async with storage.sessions() as session:
        train_list = await train_refs(session)
        test_list = await test_refs(session)
        # The test split is not part of dataset_version (trainable samples only).
        version = f"{await dataset_version(session)}-t{len(test_list)}"
    path = cache_dir / f"{version}.npz"
    cached = await asyncio.to_thread(_read_cache, path, version)
    if cached is not None:
        return cached
    train_faces, skipped_train = await _faces(storage, train_list)
    test_faces, skipped_test = await _faces(storage, test_list)
    data = TrainingData(train_faces, test_faces, version, skipped_train + skipped_test)
    await asyncio.to_thread(_write_cache, path, data)
    return data


def _read_cache(path: Path, version: str) -> TrainingData | None:
    if not path.is_file():
        return None
    with np.load(path) as cached:
        return TrainingData(
            Faces(cached["x_train"], cached["y_train"]),
            Faces(cached["x_test"], cached["y_test"]),
            version,
            int(cached["skipped"]),
        )


def _write_cache(path: Path, data: TrainingData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")  # renamed when complete: a cut-off write is never read
    np.savez(tmp, x_train=data.train.x, y_train=data.train.y, x_test=data.test.x,
             y_test=data.test.y, skipped=data.skipped)  # fmt: skip
    tmp.replace(path)


def _epoch_reporter(
    on_progress: Progress | None, epochs: int, loop: asyncio.AbstractEventLoop
) -> Callable[[int, dict[str, float]], None]:
    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        if on_progress is None:
            return
        progress = {
            "epoch": epoch,
            "epochs": epochs,
            "loss": round(logs.get("loss", float("nan")), 4),
            "val_bal_acc": round(logs.get("val_bal_acc", float("nan")), 4),
        }
        # Training runs in a thread; the report is the event loop's job. Waiting for it keeps
        # the reports in order, and a failed report must not stop the training.
        future = asyncio.run_coroutine_threadsafe(on_progress(progress), loop)
        try:
            future.result(timeout=60)
        except Exception:
            log.exception("progress report for epoch %d failed", epoch)

    return on_epoch


async def run_training(
    storage: Storage,
    params: JobParams,
    *,
    data_dir: Path,
    workdir: Path,
    archive: Path | None = None,
    on_progress: Progress | None = None,
) -> JobResult:
    data = await load_training_data(storage, data_dir / "cache")
    if len(data.train) == 0:
        raise ValueError("no trainable samples in the dataset")
    config = TrainConfig(arch=params.arch, epochs=params.epochs, balance=params.balance,
                         batch_size=params.batch_size)  # fmt: skip
    reporter = _epoch_reporter(on_progress, params.epochs, asyncio.get_running_loop())
    model, history, summary = await asyncio.to_thread(train, data.train, config, workdir, reporter)
    classifier = Classifier(model, None, params.arch)
    metrics = await asyncio.to_thread(_measure, classifier, data, archive)
    val = history.get("val_bal_acc") or [0.0]
    metrics.update(
        val_balanced_accuracy=max(val),
        training=summary,
        dataset={"version": data.version, "train": len(data.train), "test": len(data.test),
                 "skipped": data.skipped},
    )  # fmt: skip
    model_path = workdir / "final.keras"
    model.save(model_path)
    shown = metrics.get("test_4", metrics)
    title = f"{params.arch}, {summary['epochs_run']} epochs"
    pictures = {
        "learning_curve": learning_curve_png(history, title),
        "confusion_matrix": confusion_png(
            shown["confusion_matrix"], f"{title}: {'test-4' if 'test_4' in metrics else 'test'}"
        ),
    }
    result = await _register(storage, params, model_path.read_bytes(), metrics, pictures,
                             data.version)  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)
    keras.backend.clear_session()  # the trainer lives on; free this run's graphs
    return result


def _measure(classifier: Classifier, data: TrainingData, archive: Path | None) -> dict[str, Any]:
    """Metrics on the database's test split; under `test_4`, the fixed protocol's."""
    if len(data.test):
        metrics = evaluate(classifier, data.test, seed_balanced=False)
    else:
        metrics = summarise(np.zeros(0, np.int64), np.zeros((0, 4)), seed_balanced=False)
    if archive is not None and archive.is_file():
        metrics["test_4"] = evaluate(classifier, read_test_split(archive))
    return metrics


async def _register(
    storage: Storage,
    params: JobParams,
    model_bytes: bytes,
    metrics: dict[str, Any],
    pictures: dict[str, bytes],
    version_of_data: str,
) -> JobResult:
    """Blobs and the `models` row in one transaction: a failed upload registers nothing."""
    async with storage.sessions.begin() as session:
        model = await registry.register_model(
            session, blob_key="", arch=params.arch, metrics=metrics,
            dataset_version=version_of_data[:64],
        )  # fmt: skip
        model.blob_key = f"models/{model.version}.keras"
        artifacts = {name: f"models/{model.version}/{name}.png" for name in pictures}
        await storage.blobs.put(model.blob_key, model_bytes, "application/octet-stream")
        for name, png in pictures.items():
            await storage.blobs.put(artifacts[name], png, "image/png")
        model.artifacts = artifacts
        promoted = False
        if params.promote:
            active = await registry.active_model(session)
            best = active.metrics.get("balanced_accuracy", -1.0) if active else -1.0
            if metrics["balanced_accuracy"] > best:
                await registry.promote(session, model.version)
                promoted = True
        await session.flush()
        return JobResult(model.version, model.id, metrics, promoted, artifacts, pictures)
