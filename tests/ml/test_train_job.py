"""A training run from the database: samples in PostgreSQL, images in (moto) S3."""

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from db import registry
from db.engine import Storage
from db.importer import import_archive
from db.samples import insert_samples, trainable_counts
from db.training_set import SampleRef
from ml.faces import decode_image, find_faces
from ml.inference import Classifier, shipped_model_path
from ml.params import JobParams
from ml.readiness import DatasetNotReady
from ml.train_job import run_training, sample_face
from tests.conftest import FIXTURE_ARCHIVE

PHOTOS = Path(__file__).parents[1] / "data" / "faces"
ASTRONAUT_BOX = [178, 68, 93, 93]


async def add_contributed_photos(storage: Storage) -> None:
    """One contributed photo with its face box, and one whose image went missing."""
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    sha, key = await storage.blobs.put_content(data, content_type="image/jpeg")
    common = {"split": "train", "source": "telegram", "width": 512, "height": 512,
              "size_bytes": len(data), "origins": []}  # fmt: skip
    async with storage.sessions.begin() as session:
        await insert_samples(session, [
            {**common, "sha256": sha, "blob_key": key, "label": "happy", "face_box": ASTRONAUT_BOX},
            {**common, "sha256": "0" * 64, "blob_key": "images/missing", "label": "neutral",
             "face_box": None},
        ])  # fmt: skip


def test_a_contributed_photo_is_cropped_to_its_face_box() -> None:
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    face = sample_face(SampleRef("k", "happy", "telegram", ASTRONAUT_BOX), data)
    detected = find_faces(decode_image(data))[0]
    assert face.shape == (48, 48)
    assert np.abs(face.astype(int) - detected.crop.astype(int)).mean() < 12


async def test_train_register_and_promote(storage: Storage, tmp_path: Path) -> None:
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    await add_contributed_photos(storage)
    progress: list[dict[str, Any]] = []

    async def on_progress(p: dict[str, Any]) -> None:
        progress.append(p)

    params = JobParams(arch="seed_cnn", epochs=1, promote=True, batch_size=16)
    first = await run_training(
        storage, params, data_dir=tmp_path, workdir=tmp_path / "run1",
        archive=FIXTURE_ARCHIVE, on_progress=on_progress,
    )  # fmt: skip
    assert [(p["epoch"], p["epochs"]) for p in progress] == [(1, 1)]
    assert set(progress[0]) == {"epoch", "epochs", "loss", "val_bal_acc"}
    assert first.version == 1 and first.promoted  # nothing was active
    assert "warm_start" not in first.metrics and "compared_with" not in first.metrics
    metrics = first.metrics
    assert metrics["dataset"]["skipped"] == 1  # the missing image, not the whole run
    async with storage.sessions() as session:
        trainable = sum((await trainable_counts(session)).values())
    assert metrics["dataset"]["train"] == trainable - 1  # every trainable sample but the missing
    assert metrics["n"] == metrics["dataset"]["test"] > 0
    assert metrics["test_4"]["n"] == 21 and "seed_balanced_accuracy" in metrics["test_4"]
    assert 0 <= metrics["balanced_accuracy"] <= 1
    assert not (tmp_path / "run1").exists()  # the work folder is cleaned up
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    async with storage.sessions() as session:
        row = await registry.get_model(session, 1)
        assert row.is_active and row.arch == "seed_cnn" and row.blob_key == "models/1.keras"
        assert row.metrics["balanced_accuracy"] == metrics["balanced_accuracy"]
        assert set(row.artifacts) == {"learning_curve", "confusion_matrix"}
    for key in row.artifacts.values():
        png = Image.open(io.BytesIO(await storage.blobs.get(key)))
        assert png.format == "PNG" and png.width > 300
    model_file = tmp_path / "v1.keras"
    model_file.write_bytes(await storage.blobs.get(row.blob_key))
    assert Classifier.load(model_file, 1).predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 4)

    # The shipped model becomes active, registered as `emobot run` does, with no metric of the
    # run's kind on its row: the next run is measured against it on the same test split.
    shipped = shipped_model_path().read_bytes()
    _, key = await storage.blobs.put_content(shipped, prefix="models")
    async with storage.sessions.begin() as session:
        v2 = await registry.register_model(session, blob_key=key, arch="emonet", metrics={})
        await registry.promote(session, v2.version)
    second = await run_training(storage, params, data_dir=tmp_path, workdir=tmp_path / "run2")
    assert second.version == 3 and not second.promoted
    rival = second.metrics["compared_with"]
    assert rival["version"] == 2
    assert rival["balanced_accuracy"] > second.metrics["balanced_accuracy"]  # 1 epoch vs shipped
    assert "test_4" not in second.metrics  # no archive given
    assert second.metrics["dataset"]["version"] == metrics["dataset"]["version"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # the cached arrays were reused
    assert "warm_start" not in second.metrics  # seed_cnn cannot start from emonet's weights
    async with storage.sessions() as session:
        active = await registry.active_model(session)
        assert active is not None and active.version == 2

    # The same architecture as the active model: training starts from its weights.
    warm_params = JobParams(arch="emonet", epochs=1, promote=True, batch_size=16)
    third = await run_training(storage, warm_params, data_dir=tmp_path, workdir=tmp_path / "run3")
    assert third.metrics["warm_start"] == 2
    assert third.metrics["balanced_accuracy"] > second.metrics["balanced_accuracy"]
    assert third.promoted == (third.metrics["balanced_accuracy"] > rival["balanced_accuracy"])


async def test_no_test_split_registers_nothing(storage: Storage, tmp_path: Path) -> None:
    """Contributed photos only: the run is refused before training, with what is missing."""
    await add_contributed_photos(storage)
    params = JobParams(arch="seed_cnn", epochs=1, promote=True, batch_size=16)
    with pytest.raises(DatasetNotReady) as refused:
        await run_training(storage, params, data_dir=tmp_path, workdir=tmp_path / "run",
                           archive=tmp_path / "none.zip")  # fmt: skip
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
        await run_training(storage, params, data_dir=tmp_path, workdir=tmp_path / "run",
                           min_train_per_class=5)  # fmt: skip
