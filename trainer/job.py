"""A training run over the database-backed dataset, from samples to a registered model.

Reads trainable samples from PostgreSQL and their images from the blob store (cached as arrays
per dataset version), then goes the way every training goes (ml.pipeline: train, resumable;
choose the epoch; calibrate; package; measure by the fixed protocol), FER2013 images with FER+
votes trained on their vote shares, the rest on their labels. It measures the new model and
the active one alike on the database's test split and the protocol's sets, stores the model,
its flatbuffer and pictures in the blob store and registers it with its calibration, promoting
it if asked and better by ml.better's rule.
"""

import asyncio
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from db import registry
from db.engine import Storage
from db.readiness import DatasetNotReady, Readiness, readiness
from db.training_set import SampleRef, read_training_set
from emobot.labels import CLASS_INDEX, CLASSES
from ml import better
from ml.checkpoint import read_state
from ml.dataset import to_face
from ml.evaluate import Protocol, evaluate
from ml.faces import ImageError, decode_image, face_at, whole_face
from ml.ferplus import Votes, mean_distribution
from ml.inference import Classifier, Predictor, flatbuffer_key, flatbuffer_path
from ml.job_params import JobParams
from ml.params import TrainConfig
from ml.pipeline import make_release
from ml.preprocess import FACE_SIZE
from ml.report import confusion_png, learning_curve_png
from ml.training import Faces

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], Awaitable[None]]
FETCH_CONCURRENCY = 16
# Peak learning rate when starting from the active model's weights: high enough to learn from
# new samples, low enough not to throw away what it knows (chosen on the validation split).
WARM_LEARNING_RATE = 5e-4
# Named in the advice of a refused run when no archive was given.
DEFAULT_ARCHIVE = Path("fer2013.zip")


@dataclass
class TrainingData:
    train: Faces
    test: Faces
    version: str
    skipped: int  # samples whose image could not be read
    not_faces: int  # FER2013 samples left out: their FER+ votes say "not a face" or "unknown"
    feedback: int = 0  # train samples that are faces of answers their senders judged
    # Faces judged in the active model's answers, held out of training (db.training_set):
    # `judged.y` is what people said, `judged_predicted` what that model answered.
    judged: Faces | None = None
    judged_predicted: np.ndarray | None = None
    judged_model: int | None = None


@dataclass
class JobResult:
    version: int
    model_id: int
    metrics: dict[str, Any]
    promoted: bool
    artifacts: dict[str, str]
    pictures: dict[str, bytes] = field(repr=False)
    # The new model against the active one by ml.better's rule (None: nothing was active).
    verdict: better.Verdict | None = None


def sample_face(ref: SampleRef, data: bytes) -> np.ndarray:
    """A stored image as the 48×48 face it was labelled for, aligned as inference aligns it."""
    if ref.source == "fer2013":
        return to_face(data)  # already a 48×48 face, decoded exactly as the archive reader does
    image = decode_image(data)
    return face_at(image, ref.face_box).crop if ref.face_box else whole_face(image).crop


def sample_target(ref: SampleRef) -> np.ndarray | None:
    """What a sample is trained towards: its FER+ vote shares where it has votes (averaged over
    byte-identical copies), else its label; None when the votes say it is no trainable face."""
    if ref.votes is None:
        return np.eye(len(CLASSES), dtype=np.float32)[CLASS_INDEX[ref.label]]
    return mean_distribution(Votes(tuple(counts)) for counts in ref.votes.values())


async def _faces(
    storage: Storage, refs: list[SampleRef], targets: list[np.ndarray] | None = None
) -> tuple[Faces, list[int]]:
    """The refs' faces, those whose image cannot be read left out (the indices of those kept
    come with them); with `targets` (one per ref), those as soft targets and their most
    likely class as `y`."""
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
    kept = [i for i, face in enumerate(decoded) if face is not None]
    x = (
        np.stack([decoded[i] for i in kept])
        if kept
        else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    )
    if targets is None:
        return Faces(x, np.array([CLASS_INDEX[refs[i].label] for i in kept], np.int64)), kept
    t = np.array([targets[i] for i in kept], np.float32).reshape(-1, len(CLASSES))
    return Faces(x, t.argmax(axis=1), t), kept


async def load_training_data(storage: Storage, cache_dir: Path) -> TrainingData:
    """Train and test faces; decoded once per dataset version and kept in `cache_dir`."""
    dataset = await read_training_set(storage.sessions)
    train_list, test_list, version = dataset.train, dataset.test, dataset.version
    path = cache_dir / f"{version}.npz"
    cached = await asyncio.to_thread(_read_cache, path, version)
    if cached is not None:
        return cached
    targets = [sample_target(ref) for ref in train_list]
    kept = [(ref, t) for ref, t in zip(train_list, targets, strict=True) if t is not None]
    # Without a single vote the targets are the labels: trained as before, and said so.
    voted = any(ref.votes is not None for ref, _ in kept)
    train_faces, train_kept = await _faces(
        storage, [ref for ref, _ in kept], [t for _, t in kept] if voted else None
    )
    test_faces, test_kept = await _faces(storage, test_list)
    judged = dataset.judged
    judged_faces, judged_kept = await _faces(storage, judged.refs)
    skipped = len(kept) - len(train_kept) + len(test_list) - len(test_kept)
    data = TrainingData(
        train_faces,
        test_faces,
        version,
        skipped,
        len(train_list) - len(kept),
        sum(ref.source == "feedback" for ref, _ in kept),
        judged_faces if judged_kept else None,
        np.array([CLASS_INDEX[judged.predicted[i]] for i in judged_kept], np.int64),
        judged.model_version,
    )
    await asyncio.to_thread(_write_cache, path, data)
    return data


def _read_cache(path: Path, version: str) -> TrainingData | None:
    if not path.is_file():
        return None
    with np.load(path) as cached:
        targets = cached["t_train"] if "t_train" in cached.files else None
        return TrainingData(
            Faces(cached["x_train"], cached["y_train"], targets),
            Faces(cached["x_test"], cached["y_test"]),
            version,
            int(cached["skipped"]),
            int(cached["not_faces"]),
            # Caches written before feedback samples existed hold none.
            int(cached["feedback"]) if "feedback" in cached.files else 0,
            *_cached_judged(cached),
        )


def _cached_judged(cached: Any) -> tuple[Faces | None, np.ndarray | None, int | None]:
    if "x_judged" not in cached.files:
        return None, None, None
    judged = Faces(cached["x_judged"], cached["y_judged"])
    return judged, cached["p_judged"], int(cached["judged_model"])


def _write_cache(path: Path, data: TrainingData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")  # renamed when complete: a cut-off write is never read
    targets = {} if data.train.targets is None else {"t_train": data.train.targets}
    if data.judged is not None:
        targets |= {
            "x_judged": data.judged.x,
            "y_judged": data.judged.y,
            "p_judged": data.judged_predicted,
            "judged_model": data.judged_model,
        }
    np.savez(
        tmp,
        x_train=data.train.x,
        y_train=data.train.y,
        x_test=data.test.x,
        y_test=data.test.y,
        skipped=data.skipped,
        not_faces=data.not_faces,
        feedback=data.feedback,
        **targets,
    )
    tmp.replace(path)
    # Older versions are never read again, and may hold faces erased since (/forget, /mine).
    for stale in path.parent.glob("*.npz"):
        if stale != path and not stale.name.endswith(".tmp.npz"):  # another run's write
            stale.unlink(missing_ok=True)


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
    ferplus: Path | None = None,
    photos: Path | None = None,
    on_progress: Progress | None = None,
    min_train_per_class: int = 1,
    min_test_per_class: int = 1,
    unsure_below: float | None = None,
    stop_asked: Callable[[], bool] | None = None,
) -> JobResult:
    """Train, measure, register. `archive` (FER2013 zip), `ferplus` (its votes CSV) and
    `photos` (labelled real photos) are the fixed protocol's data; what is missing is left out.
    `workdir` is the run's own: a run cut off there (a killed trainer, Ctrl-C) continues from
    its last finished epoch. The new model is measured at its own calibrated threshold, the
    active one at its own, or at `unsure_below` (the worker's setting) when it has none.

    Raises DatasetNotReady, before anything is trained, when a class has fewer trainable
    images than `min_train_per_class` or fewer test images than `min_test_per_class`: a model
    measured on nothing is never registered."""
    async with storage.sessions() as session:
        ready = await readiness(session, min_train_per_class, min_test_per_class)
    if not ready.ready:
        raise DatasetNotReady(ready, archive or DEFAULT_ARCHIVE)
    data = await load_training_data(storage, data_dir / "cache")
    # Again over what could be read: unreadable images are skipped.
    decoded = Readiness(
        _per_class(data.train), _per_class(data.test), min_train_per_class, min_test_per_class
    )
    if not decoded.ready:
        raise DatasetNotReady(decoded, archive or DEFAULT_ARCHIVE)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    config, warm_start = await _start(storage, params, workdir)
    protocol = await asyncio.to_thread(Protocol.load, archive, ferplus, photos)
    reporter = _epoch_reporter(on_progress, params.epochs, asyncio.get_running_loop())
    release = await asyncio.to_thread(
        make_release,
        data.train,
        config,
        workdir,
        protocol,
        on_epoch=reporter,
        stop_asked=stop_asked,
    )
    threshold = release.calibration["unsure_below"]
    metrics = await asyncio.to_thread(_measure, release.served, data, threshold)
    if (judged := await asyncio.to_thread(_measure_judged, release.served, data)) is not None:
        metrics["feedback"] = judged
    metrics.update(release.metrics)
    metrics["calibration"] = release.calibration
    # Looked up again, not reused from the warm start: an admin may have promoted another
    # model while this one trained, and that is the one to beat.
    rival = await _measure_active(storage, data, protocol, workdir, unsure_below)
    if rival is not None:
        metrics["compared_with"] = rival
    if warm_start is not None:
        metrics["warm_start"] = warm_start
    history, summary = release.trained.history, release.trained.summary
    val = history.get("val_bal_acc") or [0.0]
    metrics.update(
        val_balanced_accuracy=max(val),
        training=summary,
        dataset={
            "version": data.version,
            "train": len(data.train),
            "test": len(data.test),
            "skipped": data.skipped,
            "not_faces": data.not_faces,
            "feedback": data.feedback,
            "held_out": 0 if data.judged is None else len(data.judged),
        },
    )
    files = await asyncio.to_thread(_read_files, release.path)
    title = f"{params.arch}, {summary['epochs_run']} epochs"
    pictures = await asyncio.to_thread(_pictures, history, metrics, title)
    result = await _register(storage, params, files, metrics, pictures, data.version)
    await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
    keras.backend.clear_session()  # the trainer lives on; free this run's graphs
    return result


async def _start(
    storage: Storage, params: JobParams, workdir: Path
) -> tuple[TrainConfig, int | None]:
    """The run's training config and the version it starts from (a warm start from the
    active model's weights when it has this architecture). Decided once and kept in the run's
    folder: a resumed run goes on as it began, even if another model was promoted since."""
    path = workdir / "start.json"
    if await asyncio.to_thread(path.is_file):
        kept = json.loads(await asyncio.to_thread(path.read_text))
        if state := await asyncio.to_thread(read_state, workdir):
            log.info("%s: resuming after epoch %d", workdir, state["epoch"])
        return TrainConfig(**kept["config"]), kept["warm_start"]
    start = await _fetch_active(storage, workdir) if params.warm else None
    if start is not None and start.arch != params.arch:
        start = None  # weights fit only their own architecture: a cold start
    warm = {"learning_rate": WARM_LEARNING_RATE, "init": str(start.path)} if start else {}
    config = params.train_config(**warm)
    version = start.version if start else None
    text = json.dumps({"config": asdict(config), "warm_start": version})
    await asyncio.to_thread(path.write_text, text)
    return config, version


def _read_files(path: Path) -> tuple[bytes, bytes]:
    """The packaged Keras file (warm starts) and its flatbuffer (serving)."""
    return path.read_bytes(), flatbuffer_path(path).read_bytes()


def _pictures(
    history: dict[str, list[float]], metrics: dict[str, Any], title: str
) -> dict[str, bytes]:
    shown = metrics.get("test_4", metrics)
    split = "test-4" if "test_4" in metrics else "test"
    return {
        "learning_curve": learning_curve_png(history, title),
        "confusion_matrix": confusion_png(shown["confusion_matrix"], f"{title}: {split}"),
    }


def _per_class(faces: Faces) -> dict[str, int]:
    counts = np.bincount(faces.y, minlength=len(CLASSES))
    return {label: int(n) for label, n in zip(CLASSES, counts, strict=True)}


@dataclass
class ActiveModel:
    version: int
    arch: str
    path: Path


async def _fetch_active(storage: Storage, workdir: Path) -> ActiveModel | None:
    """The active model's Keras file, downloaded into the run's folder (once per version)."""
    async with storage.sessions() as session:
        active = await registry.active_model(session)
    if active is None:
        return None
    path = workdir / f"active-v{active.version}.keras"
    if not await asyncio.to_thread(path.is_file):
        await asyncio.to_thread(path.write_bytes, await storage.blobs.get(active.blob_key))
    return ActiveModel(active.version, active.arch, path)


async def _measure_active(
    storage: Storage,
    data: TrainingData,
    protocol: Protocol,
    workdir: Path,
    default_unsure_below: float | None,
) -> dict[str, Any] | None:
    """The active model (its flatbuffer, what serves) measured as the new one is: on this
    run's test split and the protocol's sets, at its own threshold.

    Measured now rather than read from its row: the split may have grown since, and a model
    registered from elsewhere (the shipped one) carries other metrics or none.
    """
    async with storage.sessions() as session:
        active = await registry.active_model(session)
    if active is None:
        return None
    path = workdir / f"active-v{active.version}.tflite"
    if not await asyncio.to_thread(path.is_file):
        flatbuffer = await storage.blobs.get(flatbuffer_key(active.blob_key))
        await asyncio.to_thread(path.write_bytes, flatbuffer)
    classifier = await asyncio.to_thread(Classifier.load, path, active.version)
    threshold = better.unsure_below(active.metrics) or default_unsure_below
    measured = await asyncio.to_thread(_measure, classifier, data, threshold)
    measured.update(await asyncio.to_thread(protocol.evaluate, classifier, threshold))
    measured["dataset"] = {"version": data.version}
    return {"version": active.version, **measured}


def _measure(
    classifier: Predictor, data: TrainingData, unsure_below: float | None
) -> dict[str, Any]:
    """Metrics on the database's test split (never empty: run_training refuses without one)."""
    return evaluate(classifier, data.test, seed_balanced=False, unsure_below=unsure_below)


def _measure_judged(classifier: Predictor, data: TrainingData) -> dict[str, Any] | None:
    """How many of the faces people judged in the active model's answers this model gets
    right, against how many that model got right (what it answered them)."""
    if data.judged is None or data.judged_predicted is None:
        return None
    answered = classifier.predict(data.judged.x).argmax(axis=1)
    return {
        "model_version": data.judged_model,
        "n": len(data.judged),
        "right": int((answered == data.judged.y).sum()),
        "old_right": int((data.judged_predicted == data.judged.y).sum()),
    }


async def _register(
    storage: Storage,
    params: JobParams,
    files: tuple[bytes, bytes],
    metrics: dict[str, Any],
    pictures: dict[str, bytes],
    version_of_data: str,
) -> JobResult:
    """Blobs and the `models` row (its calibration in `metrics`) in one transaction: a failed
    upload registers nothing.

    Promoted when asked and better than the model it was compared with by ml.better's rule,
    if that one is still the active model (none active: promoted)."""
    async with storage.sessions.begin() as session:
        model = await registry.register_model(
            session,
            blob_key="",
            arch=params.arch,
            metrics=metrics,
            dataset_version=version_of_data[:64],
        )
        model.blob_key = f"models/{model.version}.keras"
        artifacts = {name: f"models/{model.version}/{name}.png" for name in pictures}
        keras_file, flatbuffer = files
        await storage.blobs.put(model.blob_key, keras_file, "application/octet-stream")
        await storage.blobs.put(
            flatbuffer_key(model.blob_key), flatbuffer, "application/octet-stream"
        )
        for name, png in pictures.items():
            await storage.blobs.put(artifacts[name], png, "image/png")
        model.artifacts = artifacts
        rival = metrics.get("compared_with")
        verdict = better.judge(metrics, rival) if rival is not None else None
        promoted = False
        if params.promote:
            active = await registry.active_model(session)
            if rival is None or verdict is None:
                wins = active is None
            else:
                still = active is not None and active.version == rival["version"]
                wins = still and verdict.better
            if wins:
                await registry.promote(session, model.version)
                promoted = True
        await session.flush()
        return JobResult(model.version, model.id, metrics, promoted, artifacts, pictures, verdict)
