"""Several trained networks of one architecture as one Keras model that averages their logits.

The members' penultimate features are concatenated and one Dense layer, whose kernel is the
members' head kernels stacked and divided by their number (its bias their heads' mean bias),
gives exactly the mean of their logits. The ensemble therefore ends in a Dense softmax like any
single network: it is calibrated, converted to one flatbuffer, parity-checked, registered and
served as a single model, and costs one interpreter call per batch of faces.

Averaging logits is averaging the members' log-probabilities: a face two members both find
likely stays likely, one that only one of them believes in is pulled towards the other.
"""

import keras
import numpy as np
from keras import layers

from emobot.labels import CLASSES
from ml.layers import Standardise, pixel_input, takes_pixels

HEAD = "mean_logits"
MEMBER = "member_{}"


def _head(model: keras.Model) -> tuple[keras.KerasTensor, np.ndarray, np.ndarray]:
    """`model`'s penultimate features and the kernel and bias giving its logits from them; a
    calibrated model's (ml/calibration.py) divided by its temperature, so that the members are
    averaged at the confidence each was calibrated to."""
    last = model.layers[-1]
    if isinstance(last, layers.Dense) and last.activation is keras.activations.softmax:
        kernel, bias = last.get_weights()
        return last.input, kernel, bias
    if isinstance(last, layers.Softmax):
        logits, scale = model.get_layer("logits"), model.get_layer("temperature").scale
        kernel, bias = logits.get_weights()
        return logits.input, kernel * scale, bias * scale
    raise ValueError(f"{model.name}: ends neither in a Dense softmax nor in a calibrated one")


def _features(model: keras.Model, name: str) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """`model` without its head, taking uint8 pixels and named `name`, and the head's
    kernel and bias."""
    features, kernel, bias = _head(model)
    body = keras.Model(model.inputs, features)
    inputs = pixel_input()
    # A file saved before preprocessing moved into the model expects standardised faces.
    x = inputs if takes_pixels(model) else Standardise()(inputs)
    return keras.Model(inputs, body(x), name=name), kernel, bias


def ensemble(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model whose logits are the mean of `members`' (each a network ending in a Dense
    softmax over CLASSES, calibrated or not; files saved before preprocessing moved in are
    accepted)."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    inputs = pixel_input()
    bodies, kernels, biases = zip(
        *(_features(m, MEMBER.format(i)) for i, m in enumerate(members, 1)), strict=True
    )
    head = layers.Dense(len(CLASSES), activation="softmax", name=HEAD)
    outputs = head(layers.Concatenate(name="features")([body(inputs) for body in bodies]))
    model = keras.Model(inputs, outputs, name=name)
    head.set_weights([np.concatenate(kernels) / len(members), np.mean(biases, axis=0)])
    return model


def size(model: keras.Model) -> int:
    """How many networks an ensemble averages; 0 for a single network."""
    return sum(1 for layer in model.layers if layer.name.startswith(MEMBER.format("")))


def first_member(model: keras.Model) -> keras.Model:
    """The first network of an ensemble as a single model, for a warm start (a single
    network: itself). Its head is its slice of the ensemble's head, which holds its logits as
    averaged (its temperature folded in) and the members' mean bias."""
    n = size(model)
    if n == 0:
        return model
    member = model.get_layer(MEMBER.format(1))
    _, kernel, bias = _head(model)
    width = member.output_shape[-1]
    outputs = layers.Dense(len(CLASSES), activation="softmax")(member.output)
    single = keras.Model(member.inputs, outputs, name=f"{model.name}_member_1")
    single.layers[-1].set_weights([kernel[:width] * n, bias])
    return single
