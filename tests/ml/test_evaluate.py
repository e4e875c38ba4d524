import numpy as np

from emobot.labels import CLASSES
from ml.dataset import load_archive
from ml.evaluate import evaluate, read_test_split
from ml.training import Faces
from tests.conftest import FIXTURE_ARCHIVE


def test_the_test_split_is_read_as_load_archive_reads_it() -> None:
    test = read_test_split(FIXTURE_ARCHIVE)
    reference = load_archive(FIXTURE_ARCHIVE).test
    assert np.array_equal(test.x, reference.x) and np.array_equal(test.y, reference.y)


class LeftHalf:
    """Says class 0 when a face's left half is brighter, class 1 otherwise."""

    def predict(self, faces: np.ndarray) -> np.ndarray:
        left = faces[:, :, :24].mean(axis=(1, 2)) > faces[:, :, 24:].mean(axis=(1, 2))
        return np.eye(len(CLASSES), dtype=np.float32)[np.where(left, 0, 1)]


def test_one_evaluate_and_its_mirrored_average() -> None:
    faces = np.zeros((2, 48, 48), np.uint8)
    faces[:, :, :24] = 200  # left half bright: class 0, and class 1 once mirrored
    test = Faces(faces, np.array([0, 0]))
    assert evaluate(LeftHalf(), test, seed_balanced=False)["accuracy"] == 1.0
    # Averaged with the mirror image: a tie, which argmax resolves to the first class.
    mirrored = evaluate(LeftHalf(), test, seed_balanced=False, mirrored=True)
    assert mirrored["accuracy"] == 1.0 and mirrored["n"] == 2
