"""The metrics table, in each language."""

import numpy as np

from ml.metrics import summarise
from runtime.report import metrics_table


def test_the_table_names_every_number_in_the_readers_language() -> None:
    y = np.array([0, 0, 1, 2, 3, 3])
    probs = np.eye(4)[[0, 1, 1, 2, 3, 0]]
    english = metrics_table(summarise(y, probs)).splitlines()
    assert "balanced accuracy" in english[2] and english[2].endswith("0.7500")
    assert english[1].startswith("accuracy") and english[1].endswith("0.6667")
    assert any(line.startswith("seed-balanced accuracy") for line in english)
    assert english[-4].split() == ["negative", "1", "1", "0", "0"]
    assert any(line.split()[0] == "surprised" for line in english)  # the display name
    russian = metrics_table(summarise(y, probs), "ru")
    assert "сбаланс. точность" in russian and "негативный" in russian
    assert "accuracy" not in russian and "negative" not in russian


def test_with_a_threshold_the_sure_answers_are_counted_and_scored() -> None:
    y = np.array([0, 0, 1, 2, 3, 3])
    # Sure (0.9) on faces 0, 2, 3 (right, right, right) and 5 (wrong); unsure on 1 and 4.
    probs = np.full((6, 4), 0.1 / 3)
    for face, (label, top) in enumerate(
        [(0, 0.9), (1, 0.4), (1, 0.9), (2, 0.9), (3, 0.4), (0, 0.9)]
    ):
        probs[face] = (1 - top) / 3
        probs[face, label] = top
    metrics = summarise(y, probs, seed_balanced=False, unsure_below=0.56)
    assert metrics["confident"] == {
        "threshold": 0.56,
        "answered": 4 / 6,
        "accuracy": 3 / 4,
        "balanced_accuracy": (1 / 1 + 1 / 1 + 1 / 1 + 0 / 1) / 4,
    }
    english = metrics_table(metrics)
    assert "answered sure (top ≥ 0.56)" in english and "0.6667" in english
    assert "уверенных ответов (≥ 0.56)" in metrics_table(metrics, "ru")
