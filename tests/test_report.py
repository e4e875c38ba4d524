"""The metrics table, in each language."""

import numpy as np

from emobot.report import metrics_table
from ml.metrics import summarise


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
