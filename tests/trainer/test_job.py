"""A training run from the database: samples in PostgreSQL, images in (moto) S3."""

import csv
import io
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import trainer.job
from cli.importer import import_archive, import_votes
from db import queue, registry, training_set
from db.engine import Storage
from db.models import Feedback, Sample, User
from db.readiness import DatasetNotReady
from db.samples import dataset_version, insert_samples, trainable_counts
from db.training_set import SampleRef, train_refs
from emobot.labels import CLASS_INDEX
from ml.faces import decode_image, find_faces
from ml.ferplus import COLUMNS, read_votes
from ml.inference import Classifier, flatbuffer_key, flatbuffer_path, shipped_model_path
from ml.job_params import JobParams
from tests.conftest import FIXTURE_ARCHIVE
from tests.ml.test_ferplus import fake_votes
from trainer.job import load_training_data, run_training, sample_face, sample_target

PHOTOS = Path(__file__).parents[1] / "data" / "faces"
ASTRONAUT_BOX = [178, 68, 93, 93]


async def add_contributed_photos(storage: Storage) -> None:
    """One contributed photo with its face box, and one whose image went missing (a face of
    an answer its sender judged: counted as feedback though it cannot be read)."""
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    sha, key = await storage.blobs.put_content(data, content_type="image/jpeg")
    common = {
        "split": "train",
        "source": "telegram",
        "width": 512,
        "height": 512,
        "size_bytes": len(data),
        "origins": [],
    }
    async with storage.sessions.begin() as session:
        await insert_samples(
            session,
            [
                {
                    **common,
                    "sha256": sha,
                    "blob_key": key,
                    "label": "happy",
                    "face_box": ASTRONAUT_BOX,
                },
                {
                    **common,
                    "sha256": "0" * 64,
                    "source": "feedback",
                    "blob_key": "images/missing",
                    "label": "neutral",
                    "face_box": None,
                },
            ],
        )


def test_a_contributed_photo_is_cropped_to_its_face_box() -> None:
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    face = sample_face(SampleRef("k", "happy", "telegram", ASTRONAUT_BOX), data)
    detected = find_faces(decode_image(data))[0]
    assert face.shape == (48, 48)
    assert np.abs(face.astype(int) - detected.crop.astype(int)).mean() < 12


def on_the_loop_thread(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the file and picture work of a run that happens on the event loop's thread,
    where it would stall every other task of the trainer (progress edits, LISTEN)."""
    blocking: list[str] = []
    loop_thread = threading.current_thread()

    def watch(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is loop_thread:
                blocking.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    watch(keras.Model, "save")
    for name in ("learning_curve_png", "confusion_png"):
        watch(trainer.job, name)
    watch(trainer.job.shutil, "rmtree")
    return blocking


async def test_train_register_and_promote(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = on_the_loop_thread(monkeypatch)
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    await add_contributed_photos(storage)
    progress: list[dict[str, Any]] = []

    async def on_progress(p: dict[str, Any]) -> None:
        progress.append(p)

    params = JobParams(arch="seed_cnn", epochs=1, promote=True, batch_size=16)
    first = await run_training(
        storage,
        params,
        data_dir=tmp_path,
        workdir=tmp_path / "run1",
        archive=FIXTURE_ARCHIVE,
        on_progress=on_progress,
        unsure_below=0.56,
    )
    assert [(p["epoch"], p["epochs"]) for p in progress] == [(1, 1)]
    assert set(progress[0]) == {"epoch", "epochs", "loss", "val_bal_acc"}
    assert first.version == 1 and first.promoted  # nothing was active
    assert "warm_start" not in first.metrics and "compared_with" not in first.metrics
    metrics = first.metrics
    assert metrics["dataset"]["skipped"] == 1  # the missing image, not the whole run
    assert metrics["dataset"]["feedback"] == 1
    async with storage.sessions() as session:
        trainable = sum((await trainable_counts(session)).values())
    assert metrics["dataset"]["train"] == trainable - 1  # every trainable sample but the missing
    assert metrics["n"] == metrics["dataset"]["test"] > 0
    assert metrics["test_4"]["n"] == 21 and "seed_balanced_accuracy" in metrics["test_4"]
    # Calibrated: measured, and registered, with its own threshold (the report's "answered
    # sure" rows), not the worker's setting.
    threshold = metrics["calibration"]["unsure_below"]
    assert metrics["calibration"]["temperature"] > 0 and 0.3 <= threshold <= 0.8
    confident = metrics["test_4"]["confident"]
    assert confident["threshold"] == threshold and 0 <= confident["answered"] <= 1
    assert 0 <= metrics["balanced_accuracy"] <= 1
    assert not (tmp_path / "run1").exists()  # the work folder is cleaned up
    assert blocking == []
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    async with storage.sessions() as session:
        row = await registry.get_model(session, 1)
        assert row.is_active and row.arch == "seed_cnn" and row.blob_key == "models/1.keras"
        assert row.metrics["balanced_accuracy"] == metrics["balanced_accuracy"]
        assert row.metrics["calibration"]["unsure_below"] == threshold
        assert set(row.artifacts) == {"learning_curve", "confusion_matrix"}
    for key in row.artifacts.values():
        png = Image.open(io.BytesIO(await storage.blobs.get(key)))
        assert png.format == "PNG" and png.width > 300
    # Served from its flatbuffer, stored beside the Keras file warm starts read.
    assert (await storage.blobs.get(row.blob_key))[:2] == b"PK"
    model_file = tmp_path / "v1.tflite"
    model_file.write_bytes(await storage.blobs.get(flatbuffer_key(row.blob_key)))
    assert Classifier.load(model_file, 1).predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 4)

    # The shipped model becomes active, registered as `emobot run` does, with no metric of the
    # run's kind on its row: the next run is measured against it on the same test split.
    shipped = shipped_model_path().read_bytes()
    _, key = await storage.blobs.put_content(shipped, prefix="models")
    await storage.blobs.put(flatbuffer_key(key), flatbuffer_path(shipped_model_path()).read_bytes())
    async with storage.sessions.begin() as session:
        v2 = await registry.register_model(session, blob_key=key, arch="emonet", metrics={})
        await registry.promote(session, v2.version)
    second = await run_training(storage, params, data_dir=tmp_path, workdir=tmp_path / "run2")
    assert second.version == 3 and not second.promoted
    rival = second.metrics["compared_with"]
    assert rival["version"] == 2
    assert rival["balanced_accuracy"] > second.metrics["balanced_accuracy"]  # 1 epoch vs shipped
    # No protocol data given: the rule falls back on the database's test split.
    assert second.verdict is not None and second.verdict.basis == ("test",)
    assert not second.verdict.better
    assert "test_4" not in second.metrics  # no archive given
    assert second.metrics["dataset"]["version"] == metrics["dataset"]["version"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # the cached arrays were reused
    assert "warm_start" not in second.metrics  # seed_cnn cannot start from emonet's weights
    async with storage.sessions() as session:
        active = await registry.active_model(session)
        assert active is not None and active.version == 2

    # A person judged v2's answer on the contributed face (they say happy, v2 said neutral):
    # held out of the next training, which is measured on it.
    async with storage.sessions.begin() as session:
        astronaut = await session.scalar(
            select(Sample.id).where(Sample.label == "happy", Sample.source == "telegram")
        )
        session.add(User(id=9))
        await session.flush()
        request = await queue.enqueue(session, chat_id=9, user_id=9, message_id=1, blob_key="k")
        session.add(
            Feedback(
                request_id=request.id,
                user_id=9,
                face=0,
                predicted="neutral",
                actual="happy",
                model_version=2,
                sample_id=astronaut,
            )
        )
    # The same architecture as the active model: training starts from its weights.
    warm_params = JobParams(arch="emonet", epochs=1, promote=True, batch_size=16)
    third = await run_training(storage, warm_params, data_dir=tmp_path, workdir=tmp_path / "run3")
    assert third.metrics["warm_start"] == 2
    judged = third.metrics["feedback"]
    assert (judged["model_version"], judged["n"], judged["old_right"]) == (2, 1, 0)
    assert third.metrics["dataset"]["held_out"] == 1
    assert third.metrics["dataset"]["train"] == trainable - 2  # the missing one, the held out
    assert third.metrics["balanced_accuracy"] > second.metrics["balanced_accuracy"]
    assert third.promoted == (third.metrics["balanced_accuracy"] > rival["balanced_accuracy"])


def counts(**votes: int) -> list[int]:
    return [votes.get(c, 0) for c in COLUMNS]


def test_a_target_averages_the_vote_shares_of_an_images_copies() -> None:
    def target(votes: dict[str, list[int]] | None) -> np.ndarray | None:
        return sample_target(SampleRef("k", "negative", "fer2013", None, votes))

    neutral, happy = counts(neutral=10), counts(happiness=2, unknown=1)
    # Each copy's shares count once, as ml.dataset.load_archive takes them (summed votes
    # would give happy 2/12).
    assert np.allclose(target({"a": neutral, "b": happy}), [0, 0.5, 0, 0.5])
    assert np.allclose(target({"a": neutral, "b": counts(NF=10)}), [0, 0, 0, 1])
    assert target({"a": counts(NF=6, fear=4)}) is None
    assert target({"a": counts()}) is None  # FER+ has no row for the image: no face
    assert np.allclose(target(None), [1, 0, 0, 0])  # no votes: its own label


async def test_training_over_the_database_on_ferplus_vote_shares(
    storage: Storage, tmp_path: Path
) -> None:
    fake_votes(tmp_path / "votes.csv")  # train files: happiness 6, neutral 4
    rows = list(csv.DictReader((tmp_path / "votes.csv").open()))
    not_a_face = next(r for r in rows if r["file"].startswith("train/surprise/"))
    not_a_face.update(dict.fromkeys(COLUMNS, "0"), NF="10")
    unvoted = next(r for r in rows if r["file"].startswith("train/fear/"))
    rows.remove(unvoted)  # an image the votes file lacks keeps its label
    with (tmp_path / "votes.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    await add_contributed_photos(storage)
    cache = tmp_path / "cache"
    before = await load_training_data(storage, cache)
    assert before.train.targets is None and before.not_faces == 0

    await import_votes(storage.sessions, read_votes(tmp_path / "votes.csv"))
    data = await load_training_data(storage, cache)
    assert data.version != before.version  # the arrays cached before the votes are not reused
    assert data.not_faces == 1 and len(data.train) == len(before.train) - 1
    async with storage.sessions() as session:
        refs = await train_refs(session)
    kept = [
        r
        for r in refs
        if r.blob_key != "images/missing" and not_a_face["file"] not in (r.votes or {})
    ]
    expected = [[0, 0.6, 0, 0.4] if r.votes else np.eye(4)[CLASS_INDEX[r.label]] for r in kept]
    assert [r.label for r in kept if not r.votes] == ["negative", "happy"]  # fear, the astronaut
    assert data.train.targets is not None
    assert np.allclose(data.train.targets, expected)
    assert (data.train.y == data.train.targets.argmax(axis=1)).all()

    params = JobParams(arch="seed_cnn", epochs=1, batch_size=16)
    # The made-up votes make every voted image happy by majority: no class minimum here.
    result = await run_training(
        storage,
        params,
        data_dir=tmp_path,
        workdir=tmp_path / "run",
        archive=FIXTURE_ARCHIVE,
        ferplus=tmp_path / "votes.csv",
        min_train_per_class=0,
    )
    metrics = result.metrics
    assert metrics["training"]["targets"] == "FER+ vote shares"
    assert metrics["dataset"]["version"] == data.version
    assert (metrics["dataset"]["train"], metrics["dataset"]["not_faces"]) == (len(kept), 1)
    assert metrics["test_4"]["n"] == 21
    assert metrics["ferplus_test"]["n"] == 19  # one test file is no face, one is ambiguous
    assert "realphotos" not in metrics  # no photos given
    # The arrays of the version before the votes were dropped (an erasure's rule too).
    assert [p.name for p in cache.iterdir()] == [f"{data.version}.npz"]
    with np.load(cache / f"{data.version}.npz") as cached:
        assert np.allclose(cached["t_train"], expected)
    async with storage.sessions() as session:
        row = await registry.get_model(session, result.version)
        assert row.metrics["ferplus_test"] == metrics["ferplus_test"]


async def test_no_test_split_registers_nothing(storage: Storage, tmp_path: Path) -> None:
    """Contributed photos only: the run is refused before training, with what is missing."""
    await add_contributed_photos(storage)
    params = JobParams(arch="seed_cnn", epochs=1, promote=True, batch_size=16)
    with pytest.raises(DatasetNotReady) as refused:
        await run_training(
            storage,
            params,
            data_dir=tmp_path,
            workdir=tmp_path / "run",
            archive=tmp_path / "none.zip",
        )
    message = str(refused.value)
    assert "test images per class (at least 1 each): negative 0, happy 0" in message
    assert (
        f"emobot import-fer2013 {tmp_path / 'none.zip'}" in message and "no file there" in message
    )
    async with storage.sessions() as session:
        assert await registry.list_models(session) == []
    # One readable trainable image of a class is not enough when two are asked for: the missing
    # image does not count.
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    with pytest.raises(DatasetNotReady, match="trainable images per class"):
        await run_training(
            storage, params, data_dir=tmp_path, workdir=tmp_path / "run", min_train_per_class=5
        )


async def test_the_training_data_and_its_cache_key_come_from_one_snapshot(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sample added between the reads of a training set (the bot taking a contribution) is
    in none of them: the refs and the version they are cached under agree."""
    await add_contributed_photos(storage)
    read_test_refs = training_set.test_refs

    async def a_sample_added_meanwhile(session: AsyncSession) -> list[SampleRef]:
        async with storage.sessions.begin() as other:
            row = {
                "sha256": "1" * 64,
                "blob_key": "images/late",
                "label": "surprise",
                "split": "train",
                "source": "telegram",
                "width": 48,
                "height": 48,
                "size_bytes": 1,
                "origins": [],
            }
            assert await insert_samples(other, [row]) == 1
        return await read_test_refs(session)

    monkeypatch.setattr(training_set, "test_refs", a_sample_added_meanwhile)
    read = await training_set.read_training_set(storage.sessions)
    async with storage.sessions() as session:
        now = await dataset_version(session)
    assert len(read.train) == 2 and read.version.startswith("2-")
    assert now.startswith("3-")  # the next read sees it, under another key
