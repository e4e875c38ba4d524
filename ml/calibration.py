"""Honest confidence: temperature scaling (Guo et al., 2017) and its yardsticks.

A network trained with cross-entropy is usually over-confident: of the faces it calls "happy"
at 90 %, fewer than 90 % are. Dividing its logits by one temperature T > 1, fitted on
validation data, makes the probabilities mean what they say without changing any prediction.
The calibrated model is the same network with its softmax moved behind a `Rescaling(1/T)`,
so it is saved and loaded as any Keras model.
"""

import itertools

import keras
import numpy as np
from keras import layers

BINS = 15


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """How far the top probability is from the accuracy, averaged over equal-width confidence
    bins weighted by how many faces fall in each."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities the logits divided by `temperature` give (log p differs from the
    logits by a constant per face, which the softmax cancels)."""
    logits = np.log(np.clip(probs, 1e-12, 1)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature with the lowest negative log-likelihood of the true classes, searched
    on a log grid from 0.5 to 5 and refined around the best point."""

    def nll(t: float) -> float:
        return float(-np.log(scaled(probs, t)[np.arange(len(y)), y] + 1e-12).mean())

    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 61))
    best = float(grid[int(np.argmin([nll(t) for t in grid]))])
    fine = np.linspace(best / 1.04, best * 1.04, 21)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def unsure_threshold(probs: np.ndarray, y: np.ndarray) -> float:
    """The top probability below which a face's label is more often wrong than right: the
    reply then names the two most likely emotions instead of one."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    candidates = np.round(np.arange(0.30, 0.81, 0.01), 2)
    below_right = [
        correct[confidence < t].mean() if (confidence < t).any() else 0.0 for t in candidates
    ]
    # The largest threshold whose faces below it are still right less than half the time.
    wrong_below = [t for t, share in zip(candidates, below_right, strict=True) if share < 0.5]
    return float(max(wrong_below, default=candidates[0]))


def calibrated(model: keras.Model, temperature: float) -> keras.Model:
    """`model` (ending in a Dense layer with a softmax) with its logits divided by the
    temperature before the softmax. Same weights; predictions' order unchanged."""
    head = model.layers[-1]
    if not isinstance(head, layers.Dense) or head.activation is not keras.activations.softmax:
        raise ValueError(f"{model.name}: the last layer is not a Dense softmax")
    logits = layers.Dense(head.units, name="logits")(head.input)
    scaled_logits = layers.Rescaling(1 / temperature, name="temperature")(logits)
    outputs = layers.Softmax(name="probabilities")(scaled_logits)
    out = keras.Model(model.inputs, outputs, name=model.name)
    out.get_layer("logits").set_weights(head.get_weights())
    return out
