import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from emobot.labels import CLASSES
from ml.architectures import seed_cnn
from ml.faces import decode_image, find_faces
from ml.inference import (
    BUCKETS,
    Classifier,
    MissingFlatbuffer,
    bucket,
    flatbuffer_path,
    shipped_model_path,
)
from ml.keras_classifier import (
    PARITY_TOLERANCE,
    KerasClassifier,
    ParityError,
    check_parity,
    convert_file,
    save_for_serving,
)
from ml.layers import Standardise, takes_pixels
from ml.preprocess import standardise
from tests.conftest import FIXTURE_ARCHIVE
from tests.ml.networks import network, saved_before_preprocessing_moved_in


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return Classifier.load(shipped_model_path())


def fixture_faces() -> np.ndarray:
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        return np.stack([find_faces(decode_image(archive.read(n)))[0].crop for n in names])


def test_the_shipped_model_loads_with_four_outputs(shipped: Classifier) -> None:
    assert shipped_model_path().is_file()
    assert shipped.version is None
    assert "shipped" in shipped.name


def test_probabilities_for_every_face(shipped: Classifier) -> None:
    faces = fixture_faces()
    probs = shipped.predict(faces)
    assert probs.shape == (len(faces), len(CLASSES)) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (probs >= 0).all()


def test_padding_to_a_bucket_does_not_change_a_face_s_answer(shipped: Classifier) -> None:
    faces = fixture_faces()[:5]
    together = shipped.predict(faces)
    alone = np.concatenate([shipped.predict(faces[i : i + 1]) for i in range(5)])
    assert np.allclose(together, alone, atol=1e-5)


def test_more_faces_than_the_largest_bucket(shipped: Classifier) -> None:
    faces = np.resize(fixture_faces(), (BUCKETS[-1] + 3, 48, 48))
    probs = shipped.predict(faces)
    assert probs.shape == (BUCKETS[-1] + 3, 4)
    assert np.allclose(probs[-3:], shipped.predict(faces[-3:]), atol=1e-5)


def test_no_faces_gives_an_empty_answer(shipped: Classifier) -> None:
    assert shipped.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 4)


def test_wrong_shapes_are_refused(shipped: Classifier) -> None:
    with pytest.raises(ValueError):
        shipped.predict(np.zeros((2, 64, 64), np.uint8))


def test_buckets() -> None:
    assert [bucket(n) for n in (1, 2, 8, 9, 16, 17)] == [1, 8, 8, 16, 16, 16]


def test_the_shipped_flatbuffer_answers_as_the_shipped_keras_model(shipped: Classifier) -> None:
    faces = fixture_faces()
    keras_probs = KerasClassifier.load(shipped_model_path()).predict(faces)
    lite_probs = shipped.predict(faces)
    assert np.abs(keras_probs - lite_probs).max() <= PARITY_TOLERANCE
    assert (keras_probs.argmax(1) == lite_probs.argmax(1)).all()


def test_a_registry_model_file_loads_with_its_version(tmp_path: Path) -> None:
    model = seed_cnn()
    path = tmp_path / "3.keras"
    assert save_for_serving(model, path) == flatbuffer_path(path) == tmp_path / "3.tflite"
    classifier = Classifier.load(path, version=3)
    assert classifier.takes_pixels  # the flatbuffer standardises the faces itself
    assert classifier.version == 3 and classifier.name == "v3"
    faces = fixture_faces()[:2]
    assert np.allclose(classifier.predict(faces), KerasClassifier(model, 3, "k").predict(faces))


def test_a_model_file_without_its_flatbuffer_is_refused(tmp_path: Path) -> None:
    seed_cnn().save(tmp_path / "bare.keras")
    with pytest.raises(MissingFlatbuffer, match="emobot convert"):
        Classifier.load(tmp_path / "bare.keras")


def test_a_flatbuffer_that_disagrees_with_its_model_is_refused(tmp_path: Path) -> None:
    save_for_serving(seed_cnn(), tmp_path / "a.keras")
    other = seed_cnn()  # the same network, other random weights
    with pytest.raises(ParityError, match="differs"):
        check_parity(other, tmp_path / "a.tflite")


def test_a_model_with_other_outputs_is_refused(tmp_path: Path) -> None:
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="7 outputs"):
        KerasClassifier(model, None, "seven")
    model.export(str(tmp_path / "seven.tflite"), format="litert", verbose=False)
    with pytest.raises(ValueError, match="7 outputs"):
        Classifier.load(tmp_path / "seven.tflite")


def test_the_model_s_own_standardisation_is_the_numpy_one() -> None:
    faces = np.concatenate([fixture_faces(), np.full((1, 48, 48), 17, np.uint8)])  # a flat one
    layer = Standardise()
    inside = keras.ops.convert_to_numpy(layer(faces[..., None]))
    assert np.abs(inside - standardise(faces)).max() < 1e-5


def test_a_model_saved_before_preprocessing_moved_inside_still_serves(tmp_path: Path) -> None:
    """Files saved before (models registered then) take standardised faces: the Keras file
    gets the layer put in front when loaded, its flatbuffer takes standardised faces, and
    converting it again gives one that takes the faces as they are, answering alike."""
    path = saved_before_preprocessing_moved_in(network(1), tmp_path / "old.keras")
    old = keras.models.load_model(path, compile=False)
    assert not takes_pixels(old) and old.inputs[0].dtype == "float32"
    faces = fixture_faces()
    served_before = Classifier.load(path)
    assert not served_before.takes_pixels
    before = served_before.predict(faces)
    assert np.abs(KerasClassifier(old, None, "old").predict(faces) - before).max() <= 1e-4
    converted = Classifier.load(convert_file(path))
    assert converted.takes_pixels
    assert np.abs(converted.predict(faces) - before).max() <= PARITY_TOLERANCE
    assert Classifier.load(path).unsure_below is None  # no card beside it


def test_the_shipped_model_answers_unsure_below_its_card_s_threshold(shipped: Classifier) -> None:
    card = json.loads((shipped_model_path().parent / "model_card.json").read_text())
    assert shipped.unsure_below == card["calibration"]["unsure_below"]
