"""The archive trainer end to end on the fixture archive: train, evaluate, package."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.dataset import load_archive
from ml.inference import shipped_model_path
from ml.params import TrainConfig
from ml.train_archive import MODEL_FILE
from ml.training import build_model, train
from tests.conftest import FIXTURE_ARCHIVE


def test_train_then_package_writes_model_and_card(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.train_archive",
            "--zip",
            str(FIXTURE_ARCHIVE),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--release",
            str(tmp_path / "rel"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((tmp_path / "rel" / "model_card.json").read_text())
    test_4 = card["metrics"]["test_4"]
    assert test_4["n"] == 21  # every test file of the fixture archive, copies included
    assert sum(map(sum, test_4["confusion_matrix"])) == 21
    assert 0.0 <= test_4["balanced_accuracy"] <= 1.0
    assert card["training"]["epochs_run"] == 1
    assert "balanced accuracy" in (tmp_path / "rel" / "MODEL_CARD.md").read_text()
    with zipfile.ZipFile(tmp_path / "rel" / MODEL_FILE) as model_file:
        names = model_file.namelist()
    assert "model.weights.h5" in names


def test_a_warm_start_begins_from_the_given_model_s_weights() -> None:
    shipped = keras.models.load_model(shipped_model_path(), compile=False)
    warm = build_model(TrainConfig(arch="emonet", init=str(shipped_model_path())), 10)
    cold = build_model(TrainConfig(arch="emonet"), 10)
    pairs = list(zip(shipped.get_weights(), warm.get_weights(), strict=True))
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert not np.array_equal(shipped.get_weights()[0], cold.get_weights()[0])


def test_the_seed_starts_adam_at_the_configured_learning_rate() -> None:
    model = build_model(TrainConfig(arch="seed_cnn", learning_rate=1e-4), 10)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)


class Interrupt(Exception):
    pass


def test_a_resumed_run_reports_every_epoch(tmp_path: Path) -> None:
    faces = load_archive(FIXTURE_ARCHIVE).train
    config = TrainConfig(arch="seed_cnn", epochs=3, batch_size=8, val_fraction=0.3)

    def stop_after_first(epoch: int, logs: dict[str, float]) -> None:
        raise Interrupt  # after the epoch's backup: as if the process were killed there

    with pytest.raises(Interrupt):
        train(faces, config, tmp_path, on_epoch=stop_after_first)
    _, history, summary = train(faces, config, tmp_path)
    assert len(history["loss"]) == len(history["val_bal_acc"]) == summary["epochs_run"] == 3
    # A fresh run in the same folder starts its history afresh.
    _, again, _ = train(faces, TrainConfig(arch="seed_cnn", epochs=1, batch_size=8), tmp_path)
    assert len(again["loss"]) == 1
