"""FER+ votes: labels and targets from them, the archive read with them, and training on them.

The votes here are made up for the fixture archive's files: the real votes file stays in
../shared/data and is never copied into the repository.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emobot.labels import CLASS_INDEX
from ml.dataset import load_archive
from ml.evaluate import read_ferplus_test
from ml.fer2013 import iter_archive
from ml.ferplus import COLUMNS, Votes, read_votes
from tests.conftest import FIXTURE_ARCHIVE


def votes(**counts: int) -> Votes:
    return Votes(tuple(counts.get(c, 0) for c in COLUMNS))


def test_the_majority_maps_to_our_classes_and_ties_go_to_the_first_column() -> None:
    assert votes(neutral=6, happiness=4).majority() == CLASS_INDEX["neutral"]
    assert votes(anger=3, contempt=4, neutral=3).majority() == CLASS_INDEX["negative"]
    assert votes(surprise=5, fear=5).majority() == CLASS_INDEX["surprise"]  # a tie
    assert votes(happiness=4, neutral=4).majority() == CLASS_INDEX["neutral"]  # first column
    assert votes(NF=7, happiness=3).majority() is None
    assert votes(unknown=5, sadness=4).majority() is None
    assert votes().majority() is None


def test_the_distribution_sums_the_emotions_into_four_classes() -> None:
    shares = votes(neutral=5, sadness=2, anger=1, happiness=1, unknown=1).distribution()
    assert shares is not None
    assert np.allclose(shares, [3 / 9, 1 / 9, 0, 5 / 9])  # negative, happy, surprise, neutral
    assert votes(NF=10).distribution() is None


# A FER+ column for each of our classes.
COLUMN_OF = {
    "negative": "sadness",
    "happy": "happiness",
    "surprise": "surprise",
    "neutral": "neutral",
}


def fake_votes(
    path: Path, archive: Path = FIXTURE_ARCHIVE, *, agree: bool = False
) -> dict[str, str]:
    """A votes file for the archive's files: each test file's votes say neutral except one
    "not a face" and one ambiguous duplicate; train files get split votes (happy 6, neutral
    4), or with `agree` all ten for their own class. Returns what each special file is."""
    special: dict[str, str] = {}
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "fer2013_label", "usage", *COLUMNS, "ambiguous_duplicate"])
        for i, file in enumerate(iter_archive(archive)):
            counts = dict.fromkeys(COLUMNS, 0)
            ambiguous = 0
            if file.split == "train" and agree:
                counts[COLUMN_OF[file.label]] = 10
            elif file.split == "train":
                counts.update(happiness=6, neutral=4)
            elif not special.get("nf"):
                counts["NF"], special["nf"] = 10, file.name
            elif not special.get("ambiguous"):
                counts["neutral"], ambiguous, special["ambiguous"] = 10, 1, file.name
            else:
                counts["neutral"] = 7 + i % 3
            writer.writerow([file.name, file.emotion, "", *counts.values(), ambiguous])
    return special


def test_the_archive_read_with_votes(tmp_path: Path) -> None:
    special = fake_votes(tmp_path / "votes.csv")
    data = load_archive(FIXTURE_ARCHIVE, read_votes(tmp_path / "votes.csv"))
    plain = load_archive(FIXTURE_ARCHIVE)
    assert data.train.targets is not None and len(data.train) == len(plain.train)
    assert np.allclose(data.train.targets, [[0, 0.6, 0, 0.4]] * len(data.train))
    assert (data.train.y == CLASS_INDEX["happy"]).all()  # the most likely class of the votes
    # ferplus-test: every test file but the "not a face" and the ambiguous duplicate.
    assert set(special) == {"nf", "ambiguous"}
    ferplus_test = read_ferplus_test(FIXTURE_ARCHIVE, read_votes(tmp_path / "votes.csv"))
    assert len(ferplus_test) == len(plain.test) - 2
    assert (ferplus_test.y == CLASS_INDEX["neutral"]).all()


def test_training_on_vote_shares_reports_ferplus_test(tmp_path: Path) -> None:
    fake_votes(tmp_path / "votes.csv")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.train_archive",
            "--zip",
            str(FIXTURE_ARCHIVE),
            "--epochs",
            "1",
            "--ferplus",
            str(tmp_path / "votes.csv"),
            "--aligned",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["training"]["targets"] == "FER+ vote shares"
    assert card["training"]["aligned_views"] is True
    assert card["metrics"]["ferplus_test"]["n"] == card["metrics"]["test_4"]["n"] - 2
    aligned = np.load(tmp_path / "run" / "aligned.npy")
    assert aligned.shape[1:] == (48, 48) and aligned.dtype == np.uint8
    calibration = card["calibration"]
    assert calibration["temperature"] > 0 and 0.3 <= calibration["unsure_below"] <= 0.8
    assert set(calibration["expected_calibration_error"]) == {"validation", "ferplus_test"}
    text = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "ferplus-test" in text and "## Calibration" in text


@pytest.mark.parametrize("column", ["unknown", "NF"])
def test_a_face_nobody_could_label_is_not_trained_on(tmp_path: Path, column: str) -> None:
    path = tmp_path / "votes.csv"
    fake_votes(path)
    rows = list(csv.DictReader(path.open()))
    first_train = next(r for r in rows if r["file"].startswith("train/"))
    first_train.update(dict.fromkeys(COLUMNS, "0"), **{column: "9"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load_archive(FIXTURE_ARCHIVE, read_votes(path))
    assert len(data.train) == len(load_archive(FIXTURE_ARCHIVE).train) - 1
