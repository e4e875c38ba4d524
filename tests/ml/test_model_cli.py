"""`emobot predict` and `emobot evaluate` as a user runs them."""

import json
import os
import resource
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from db.engine import Storage
from db.registry import register_model
from emobot.labels import CLASS_INDEX, CLASSES, FER_TO_CLASS
from emobot.settings import Settings
from ml.inference import flatbuffer_path, shipped_model_path
from ml.metrics import summarise
from tests.conftest import FIXTURE_ARCHIVE, child_env, first_image
from tests.ml.test_ferplus import fake_votes

PHOTOS = Path(__file__).parents[1] / "data" / "faces"


def emobot(
    *args: str, env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **options,
    )


def test_predict_json_finds_0_1_and_3_faces_and_reports_bad_files(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("not a photo")
    out = emobot(
        "predict",
        "--json",
        "--annotate",
        str(tmp_path / "ann"),
        str(PHOTOS),
        str(tmp_path / "notes.jpg"),
    )
    assert out.returncode == 1, out.stderr  # one file was no image
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    by_name = {Path(line["path"]).name: line for line in lines}
    counts = {
        "coffee.jpg": 0,
        "astronaut.jpg": 1,
        "three_faces.jpg": 3,
        "group_one.jpg": 1,
        "group_three.jpg": 3,
        "six_faces.jpg": 6,
    }
    assert {name: len(by_name[name]["faces"]) for name in counts} == counts
    assert "supported format" in by_name["notes.jpg"]["error"]
    for face in by_name["three_faces.jpg"]["faces"]:
        assert len(face["box"]) == 4 and face["label"] in CLASSES
        assert set(face["probs"]) == set(CLASSES)
        assert abs(sum(face["probs"].values()) - 1) < 1e-3
        assert face["label"] == max(face["probs"], key=face["probs"].get)
    written = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert written == sorted(counts)
    assert Image.open(tmp_path / "ann" / "three_faces.jpg").size == (512, 512)


def test_predict_whole_and_the_table(tmp_path: Path) -> None:
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        face = Path(archive.extract(first_image("test/happy"), tmp_path))
    out = emobot("predict", "--json", "--whole", str(face), str(PHOTOS / "coffee.jpg"))
    assert out.returncode == 0, out.stderr
    crop, coffee = (json.loads(line) for line in out.stdout.splitlines())
    assert crop["faces"][0]["box"] == [0, 0, 48, 48]
    assert coffee["faces"][0]["box"] == [100, 0, 400, 400]  # the centre square, no detection
    table = emobot("predict", str(PHOTOS / "three_faces.jpg"))
    assert table.returncode == 0 and "three_faces.jpg: 3 faces" in table.stdout
    assert table.stdout.count("negative ") == 3


def test_evaluate_reports_test_4_ferplus_test_and_real_photos(tmp_path: Path) -> None:
    fake_votes(tmp_path / "votes.csv")  # every test file neutral but two left out
    photos = tmp_path / "photos"
    for label, name in [
        ("happy", "astronaut.jpg"),
        ("happy", "group_one.jpg"),
        ("neutral", "coffee.jpg"),
    ]:
        (photos / label).mkdir(parents=True, exist_ok=True)
        (photos / label / name).write_bytes((PHOTOS / name).read_bytes())
    out = emobot(
        "evaluate",
        "--archive",
        str(FIXTURE_ARCHIVE),
        "--ferplus",
        str(tmp_path / "votes.csv"),
        "--photos",
        str(photos),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert "shipped" in metrics["model"]
    test_4 = metrics["test_4"]
    assert test_4["n"] == 21  # the fixture's test split, every file
    assert sum(map(sum, test_4["confusion_matrix"])) == 21 and "seed_balanced_accuracy" in test_4
    assert metrics["ferplus_test"]["n"] == 19
    real = metrics["realphotos"]
    # The coffee has no face: a wrong answer, counted apart from the confusion matrix.
    assert real["n"] == 3 and real["face_found"] == pytest.approx(2 / 3)
    assert real["no_face"] == [0, 0, 0, 1] and real["recall"]["neutral"] == 0
    table = emobot("evaluate", "--archive", str(tmp_path / "none.zip"), "--photos", str(photos))
    assert table.returncode == 0, table.stderr
    assert (
        "face found" in table.stdout
        and "test-4 (FER2013 test split, its own labels): left out" in table.stdout
    )


def test_evaluate_without_any_data_says_where_it_looked(tmp_path: Path) -> None:
    out = emobot(
        "evaluate", "--archive", str(tmp_path / "none.zip"), "--photos", str(tmp_path / "no-photos")
    )
    assert out.returncode == 2 and "none.zip" in out.stderr and "no-photos" in out.stderr


def test_an_unknown_model_file() -> None:
    out = emobot("predict", "--model", "nothing.keras", str(PHOTOS / "coffee.jpg"))
    assert out.returncode != 0 and "nothing.keras" in out.stderr


async def test_train_from_the_database(
    settings: Settings, sessions: object, tmp_path: Path
) -> None:
    env = child_env(settings, DATA_DIR=str(settings.data_dir))
    empty = emobot("train", "--epochs", "1", env=env)
    assert empty.returncode == 2 and "emobot import-fer2013" in empty.stderr, empty.stderr
    votes = str(tmp_path / "votes.csv")
    fake_votes(tmp_path / "votes.csv", agree=True)  # every class keeps its training images
    assert (
        emobot("import-fer2013", str(FIXTURE_ARCHIVE), "--ferplus", votes, env=env).returncode == 0
    )
    bad = emobot("train", "--arch", "resnet", env=env)
    assert bad.returncode == 2 and "no arch" in bad.stderr
    nothing = emobot("train", "--resume", env=env)  # the refused run trained no epoch
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr
    out = emobot(
        "train",
        "--epochs",
        "1",
        "--arch",
        "seed_cnn",
        "--promote",
        "--archive",
        str(FIXTURE_ARCHIVE),
        "--ferplus",
        votes,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "epoch 1/1: loss" in out.stdout
    assert "model version 1 registered" in out.stdout and "promoted" in out.stdout
    assert " training images, targets: FER+ vote shares), promoted" in out.stdout
    assert "test-4 (FER2013 test split, its own labels)" in out.stdout
    assert "ferplus-test (FER2013 test split, FER+ majority labels)" in out.stdout
    assert "real photos" not in out.stdout  # REAL_PHOTOS points nowhere here
    listed = emobot("predict", "--model", "1", "--json", str(PHOTOS / "astronaut.jpg"), env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["faces"]) == 1


def test_predict_whole_over_the_fer2013_test_split_gives_the_card_s_numbers(
    fer2013_zip: Path, tmp_path: Path
) -> None:
    """The CLI path (files → decode → whole-image crop → model) scores what the card says."""
    with zipfile.ZipFile(fer2013_zip) as archive:
        archive.extractall(tmp_path, [n for n in archive.namelist() if n.startswith("test/")])
    out = emobot("predict", "--json", "--whole", str(tmp_path / "test"))
    assert out.returncode == 0, out.stderr[-2000:]
    truth, probs = [], []
    for line in out.stdout.splitlines():
        result = json.loads(line)
        truth.append(CLASS_INDEX[FER_TO_CLASS[Path(result["path"]).parent.name]])
        probs.append([result["faces"][0]["probs"][c] for c in CLASSES])
    measured = summarise(np.array(truth), np.array(probs), seed_balanced=False)
    card = json.loads((shipped_model_path().parent / "model_card.json").read_text())
    expected = card["metrics"]["test_4"]
    assert measured["n"] == expected["n"] == 7178
    # Probabilities are printed to 4 decimals: a near tie may flip, nothing more.
    assert abs(measured["balanced_accuracy"] - expected["balanced_accuracy"]) < 0.002
    assert abs(measured["accuracy"] - expected["accuracy"]) < 0.002


def _file_size_limit(limit: int) -> Callable[[], None]:
    """For a child process: writes past `limit` bytes fail (EFBIG) instead of killing it."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


async def test_a_download_cut_short_leaves_no_half_model_in_the_shared_cache(
    settings: Settings, storage: Storage
) -> None:
    await storage.blobs.put("models/v1.keras", shipped_model_path().read_bytes())
    data = flatbuffer_path(shipped_model_path()).read_bytes()
    await storage.blobs.put("models/v1.tflite", data)
    async with storage.sessions.begin() as session:
        await register_model(session, blob_key="models/v1.keras", arch="emonet", metrics={})
    env = child_env(settings, DATA_DIR=str(settings.data_dir))
    predict = ("predict", "--model", "1", str(PHOTOS / "coffee.jpg"))
    cut = emobot(*predict, env=env, preexec_fn=_file_size_limit(len(data) // 2))
    assert cut.returncode != 0
    # Workers load v1.tflite from this folder: half a file there would break every one of them.
    assert not settings.model_file(1).exists()
    assert [p.name for p in settings.model_file(1).parent.iterdir()] == []
    whole = emobot(*predict, env=env)
    assert whole.returncode == 0, whole.stderr
    assert settings.model_file(1).read_bytes() == data
