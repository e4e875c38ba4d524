import json

import keras
import numpy as np
import pytest

from ml.architectures import emonet
from ml.calibration import (
    calibrated,
    expected_calibration_error,
    fit_temperature,
    scaled,
    unsure_threshold,
)
from ml.inference import shipped_model_path


def overconfident(n: int = 4000, temperature: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(logits) and the probabilities softmax(logits · T): a model
    exactly `temperature` times too sure of itself."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (n, 4))
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in honest])
    sure = np.exp(logits * temperature)
    return sure / sure.sum(axis=1, keepdims=True), y


def test_the_fitted_temperature_undoes_overconfidence() -> None:
    probs, y = overconfident(temperature=2.0)
    temperature = fit_temperature(probs, y)
    assert temperature == pytest.approx(2.0, rel=0.1)
    before = expected_calibration_error(probs, y)
    after = expected_calibration_error(scaled(probs, temperature), y)
    assert before > 0.1 and after < 0.03
    assert (scaled(probs, temperature).argmax(axis=1) == probs.argmax(axis=1)).all()


def test_unsure_faces_are_those_more_often_wrong_than_right() -> None:
    probs, y = overconfident(temperature=1.0)
    threshold = unsure_threshold(probs, y)
    low = probs.max(axis=1) < threshold
    assert (probs[low].argmax(axis=1) == y[low]).mean() < 0.5
    assert (probs[~low].argmax(axis=1) == y[~low]).mean() > 0.5
    assert 0.3 <= threshold <= 0.8


def test_the_calibrated_model_divides_the_logits_and_saves_as_any_model(tmp_path) -> None:
    model = emonet()  # as training leaves it: a Dense softmax head
    x = np.random.default_rng(1).integers(0, 256, (6, 48, 48, 1)).astype(np.uint8)
    probs = model.predict(x, verbose=0)
    cooled = calibrated(model, 1.6)
    assert np.allclose(cooled.predict(x, verbose=0), scaled(probs, 1.6), atol=1e-5)
    cooled.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert np.allclose(loaded.predict(x, verbose=0), scaled(probs, 1.6), atol=1e-5)
    with pytest.raises(ValueError, match="Dense softmax"):
        calibrated(cooled, 2.0)  # already ends in a Softmax layer


def test_the_shipped_model_is_calibrated_with_its_card_s_temperature() -> None:
    model = keras.models.load_model(shipped_model_path(), compile=False)
    card = json.loads((shipped_model_path().parent / "model_card.json").read_text())
    scale = model.get_layer("temperature").scale
    assert scale == pytest.approx(1 / card["calibration"]["temperature"], rel=1e-3)
