import numpy as np

from emobot.labels import CLASSES
from ml.dataset import load_archive
from ml.evaluate import format_metrics, read_test_split
from ml.metrics import summarise
from tests.conftest import FIXTURE_ARCHIVE


def test_the_test_split_is_read_as_load_archive_reads_it() -> None:
    test = read_test_split(FIXTURE_ARCHIVE)
    reference = load_archive(FIXTURE_ARCHIVE).test
    assert np.array_equal(test.x, reference.x) and np.array_equal(test.y, reference.y)


def test_the_report_names_every_number() -> None:
    y = np.array([0, 0, 1, 2, 3, 3])
    probs = np.eye(4)[[0, 1, 1, 2, 3, 0]]
    text = format_metrics(summarise(y, probs))
    assert "balanced accuracy         0.7500" in text
    assert "accuracy                  0.6667" in text
    assert "seed-balanced accuracy" in text
    for name in CLASSES:
        assert name in text
    assert "  negative         1        1        0        0" in text
