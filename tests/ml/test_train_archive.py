"""The archive trainer end to end on the fixture archive: train, evaluate, package, resume."""

import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.checkpoint import RunMismatch, read_state
from ml.dataset import load_archive
from ml.ensemble import first_member
from ml.inference import Classifier, shipped_model_path
from ml.params import TrainConfig
from ml.pipeline import MODEL_FILE
from ml.training import build_model, train
from tests.conftest import FIXTURE_ARCHIVE

ROOT = Path(__file__).resolve().parents[2]


def train_archive(*args: str) -> list[str]:
    return [sys.executable, "-m", "ml.train_archive", "--zip", str(FIXTURE_ARCHIVE), *args]


def test_train_then_package_writes_model_and_card(tmp_path: Path) -> None:
    result = subprocess.run(
        train_archive(
            "--epochs", "1", "--out", str(tmp_path / "run"), "--release", str(tmp_path / "rel")
        ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
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
    # Calibrated, its threshold in the card, which serving reads beside the file; the
    # flatbuffer takes the faces as they are.
    calibration = card["calibration"]
    assert calibration["temperature"] > 0 and 0.3 <= calibration["unsure_below"] <= 0.8
    served = Classifier.load(tmp_path / "rel" / MODEL_FILE)
    assert served.takes_pixels and served.unsure_below == calibration["unsure_below"]
    assert test_4["confident"]["threshold"] == calibration["unsure_below"]
    # The same folder again without --resume: refused, nothing lost.
    again = subprocess.run(
        train_archive("--epochs", "1", "--out", str(tmp_path / "run")),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert again.returncode != 0 and "--resume continues it" in again.stderr


def test_a_warm_start_begins_from_the_given_model_s_weights() -> None:
    # An ensemble's first member is the start; a single network is itself (ml/ensemble.py).
    shipped = first_member(keras.models.load_model(shipped_model_path(), compile=False))
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
    config = TrainConfig(arch="emonet", epochs=3, batch_size=8, val_fraction=0.3)

    def stop_after_first(epoch: int, logs: dict[str, float]) -> None:
        raise Interrupt  # after the epoch's checkpoint: as if the process were killed there

    with pytest.raises(Interrupt):
        train(faces, config, tmp_path / "cut", on_epoch=stop_after_first)
    state = read_state(tmp_path / "cut")
    assert state is not None and state["epoch"] == 1
    other = TrainConfig(arch="emonet", epochs=4, batch_size=8, val_fraction=0.3)
    with pytest.raises(RunMismatch, match="epochs"):
        train(faces, other, tmp_path / "cut")  # another run's parameters: never mixed in
    epochs: list[int] = []
    trained = train(faces, config, tmp_path / "cut", on_epoch=lambda e, _: epochs.append(e))
    assert epochs == [2, 3] and trained.summary["resumed_at"] == 1
    history = trained.history
    assert len(history["loss"]) == len(history["val_bal_acc"]) == trained.summary["epochs_run"]
    assert trained.summary["epochs_run"] == 3
    # The cosine schedule went on where it was: the same learning rate every epoch as a run
    # that was never cut off.
    whole = train(faces, config, tmp_path / "whole")
    assert history["lr"] == whole.history["lr"] and history["lr"][0] > history["lr"][2]
    # Finished: the same call again trains no more.
    assert train(faces, config, tmp_path / "cut", on_epoch=lambda e, _: epochs.append(e)).history
    assert epochs == [2, 3]
    # A fresh run in the same folder starts its history afresh.
    fresh = TrainConfig(arch="seed_cnn", epochs=1, batch_size=8)
    again = train(faces, fresh, tmp_path / "cut", resume=False)
    assert len(again.history["loss"]) == 1


def test_a_run_killed_after_its_first_checkpoint_resumes_from_there(tmp_path: Path) -> None:
    """SIGKILL (nothing can be saved then) once the first epoch's checkpoint is written: the
    same command with --resume trains from epoch 2, and the run ends with as many epochs as
    an uninterrupted one."""
    out = tmp_path / "run"
    args = ["--arch", "seed_cnn", "--epochs", "3", "--batch-size", "8", "--out", str(out)]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(train_archive(*args), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while (read_state(out / "work") or {}).get("epoch", 0) < 1:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    state = read_state(out / "work")
    assert state is not None and not state.get("finished")
    done = state["epoch"]
    assert 1 <= done < 3  # cut off mid-run (its first checkpoint, unless epoch 2 just ended)
    resumed = subprocess.run(
        train_archive(*args, "--resume"), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming the run in {out / 'work'} after epoch {done}" in resumed.stdout
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["resumed_at"] == done
    assert card["epochs"] == card["training"]["epochs_run"] == 3
    assert [row["epoch"] for row in read_state(out / "work")["history"]] == [1, 2, 3]


def test_a_bf16_run_packages_a_float32_model_and_its_card_names_the_run_s_flags(
    tmp_path: Path,
) -> None:
    """Packaging builds its calibration layers in float32 whatever precision trained (LiteRT
    has no bfloat16 built-ins), and the card's command is the run's, also when packaged again."""
    run = tmp_path / "run"
    flags = ["--epochs", "1", "--seed", "7", "--learning-rate", "0.002", "--bf16"]
    flags += ["--out", str(run)]
    result = subprocess.run(
        train_archive(*flags), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Classifier.load(run / MODEL_FILE).takes_pixels
    again = subprocess.run(
        train_archive("--out", str(run), "--package-only", "--bf16"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    command = json.loads((run / "model_card.json").read_text())["command"]
    assert "--epochs 1 " in command and "--seed 7" in command and "--learning-rate 0.002" in command
