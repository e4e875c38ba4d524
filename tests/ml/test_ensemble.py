"""Ensembles: several networks as one model averaging their logits, packaged like any other."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.calibration import calibrated
from ml.dataset import load_archive
from ml.ensemble import ensemble, first_member, size
from ml.inference import Classifier, shipped_model_path
from ml.keras_classifier import KerasClassifier, parity_faces, save_for_serving
from ml.params import TrainConfig
from ml.pipeline import MODEL_FILE
from ml.training import build_model, taught
from tests.conftest import FIXTURE_ARCHIVE
from tests.ml.networks import network, saved_before_preprocessing_moved_in

ROOT = Path(__file__).resolve().parents[2]


def probs(model: keras.Model, faces: np.ndarray) -> np.ndarray:
    return KerasClassifier(model, None, model.name).predict(faces)


def mean_of_logits(*members: np.ndarray) -> np.ndarray:
    """softmax(mean of the logits), from the members' probabilities (log p is the logits less a
    constant per face, which the softmax cancels)."""
    logits = np.mean([np.log(p) for p in members], axis=0)
    out = np.exp(logits - logits.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def test_an_ensemble_answers_the_mean_of_its_members_logits(tmp_path: Path) -> None:
    faces = parity_faces()
    a, b, c = network(1), calibrated(network(2), 1.7), network(3)
    old_c = keras.models.load_model(
        saved_before_preprocessing_moved_in(c, tmp_path / "old.keras"), compile=False
    )
    model = ensemble([a, b, old_c])
    assert size(model) == 3 and size(a) == 0
    expected = mean_of_logits(probs(a, faces), probs(b, faces), probs(c, faces))
    assert np.abs(probs(model, faces) - expected).max() < 1e-5
    # Not a plain copy of one member: the members disagree, the mean differs from each.
    assert all(np.abs(expected - probs(m, faces)).max() > 1e-3 for m in (a, b, c))


def test_a_calibrated_ensemble_serves_from_one_flatbuffer(tmp_path: Path) -> None:
    faces = parity_faces()
    model = calibrated(ensemble([network(1), network(2)]), 1.3)
    save_for_serving(model, tmp_path / MODEL_FILE)
    served = Classifier.load(tmp_path / MODEL_FILE)
    assert served.takes_pixels
    assert np.abs(served.predict(faces) - probs(model, faces)).max() < 1e-4
    loaded = keras.models.load_model(tmp_path / MODEL_FILE, compile=False)
    assert size(loaded) == 2


def test_a_warm_start_from_an_ensemble_takes_its_first_member(tmp_path: Path) -> None:
    a = network(1, width=32)  # the width TrainConfig's "emonet" builds
    path = tmp_path / MODEL_FILE
    save_for_serving(calibrated(ensemble([a, network(2, width=32)]), 1.3), path)
    warm = build_model(TrainConfig(arch="emonet", init=str(path)), 10)
    cold = build_model(TrainConfig(arch="emonet"), 10)
    # Member 1's body exactly; the head is its share of the averaged one.
    body = a.get_weights()[:-2]
    assert all(np.array_equal(x, y) for x, y in zip(body, warm.get_weights()[:-2], strict=True))
    assert not np.array_equal(a.get_weights()[0], cold.get_weights()[0])
    single = first_member(keras.models.load_model(path, compile=False))
    assert size(single) == 0 and len(single.get_weights()) == len(a.get_weights())


def make_ensemble(release: Path, *members: Path) -> subprocess.CompletedProcess[str]:
    flags = [f"--member={m}" for m in members]
    command = ["-m", "ml.make_ensemble", "--zip", str(FIXTURE_ARCHIVE), "--release", str(release)]
    return subprocess.run(
        [sys.executable, *command, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_the_ensemble_of_two_copies_of_the_shipped_model_measures_as_it_does(
    tmp_path: Path,
) -> None:
    """Averaging a model with itself changes nothing: the ensemble's card (calibrated on the
    fixture's validation split, measured by the protocol) gives the shipped model's answers."""
    shipped = shipped_model_path().parent
    out = make_ensemble(tmp_path / "rel", shipped, shipped)
    assert out.returncode == 0, out.stderr[-2000:]
    card = json.loads((tmp_path / "rel" / "model_card.json").read_text())
    assert len(card["training"]["members"]) == 2 and card["epochs"] is None
    served = Classifier.load(tmp_path / "rel" / MODEL_FILE)
    faces = parity_faces()
    own = Classifier.load(shipped_model_path()).predict(faces)
    # The same ranking of the emotions for every face (the temperature may differ).
    assert (np.argsort(served.predict(faces), axis=1) == np.argsort(own, axis=1)).all()
    assert card["metrics"]["test_4"]["n"] == 21
    markdown = (tmp_path / "rel" / "MODEL_CARD.md").read_text()
    assert "## Members" in markdown and "2 × `" in markdown


def test_members_chosen_on_other_validation_splits_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(shipped_model_path().parent, other)
    card = json.loads((other / "model_card.json").read_text())
    card["training"]["config"]["split_seed"] = 7
    (other / "model_card.json").write_text(json.dumps(card))
    out = make_ensemble(tmp_path / "rel", shipped_model_path().parent, other)
    assert out.returncode != 0 and "different validation splits" in out.stderr
    assert not (tmp_path / "rel" / MODEL_FILE).exists()


@pytest.mark.parametrize("members", [[], ["one"]])
def test_an_ensemble_needs_two_members(members: list[str]) -> None:
    with pytest.raises(ValueError, match="at least two"):
        ensemble([network(1) for _ in members])


def test_every_subset_of_the_members_is_measured(tmp_path: Path) -> None:
    """Two copies of one model: every row scores as that model does, under both rules."""
    for name in ("a", "b"):
        shutil.copytree(shipped_model_path().parent, tmp_path / name)
    table = tmp_path / "ensembles.json"
    command = ["-m", "ml.compare_ensembles", "--zip", str(FIXTURE_ARCHIVE), "--json", str(table)]
    members = [f"--member={tmp_path / n}" for n in ("a", "b")]
    out = subprocess.run(
        [sys.executable, *command, *members],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(table.read_text())
    assert [(r["members"], r["rule"]) for r in rows] == [
        (["a"], "-"),
        (["b"], "-"),
        (["a", "b"], "logits"),
        (["a", "b"], "probabilities"),
    ]
    assert {(r["validation"], r["test_4"]) for r in rows} == {
        (rows[0]["validation"], rows[0]["test_4"])
    }
    assert "| a + b | logits |" in out.stdout


def test_a_student_learns_from_its_teacher_s_answers_and_the_labels() -> None:
    faces = load_archive(FIXTURE_ARCHIVE).train
    answers = Classifier.load(shipped_model_path()).predict(faces.x)
    student = taught(faces, shipped_model_path(), 0.25)
    assert np.allclose(student.targets, 0.75 * faces.soft_targets() + 0.25 * answers, atol=1e-6)
    assert np.allclose(student.targets.sum(axis=1), 1, atol=1e-5)
    assert (student.y == faces.y).all() and student.x is faces.x
    # The teacher disagrees with some labels, so the targets did change.
    assert not np.allclose(student.targets, faces.soft_targets(), atol=0.05)
