"""The model's own preprocessing, as a Keras layer: a saved model takes the faces as they are.

Every architecture starts with `Standardise` (ml/architectures.py), so the `.keras` file and
the LiteRT flatbuffer converted from it take uint8 pixels and need no Python code around them
(the way keras-io keeps preprocessing inside the model). Models saved before carry no such
layer and expect standardised input: `with_preprocessing` puts the layer in front of them when
they are loaded, without retraining (the shipped `emotion.keras` is one of them).
"""

from typing import Any

import keras
from keras import layers

from ml.preprocess import FACE_SIZE, MIN_SPREAD

PIXELS = "pixels"  # the input's name; the flatbuffer's input tensor is named after it


@keras.saving.register_keras_serializable("emobot")
class Standardise(layers.Layer):
    """uint8 faces (N, 48, 48, 1) → float32, each face to zero mean and unit spread: the same
    arithmetic as ml.preprocess.standardise (a test holds them together). Always float32, even
    under a mixed-precision policy: the spread of a face is not a bfloat16 number."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, faces: Any) -> Any:
        x = keras.ops.cast(faces, "float32")
        mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        std = keras.ops.std(x, axis=(1, 2), keepdims=True)
        return (x - mean) / keras.ops.maximum(std, MIN_SPREAD)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape


def pixel_input() -> keras.KerasTensor:
    return keras.Input((FACE_SIZE, FACE_SIZE, 1), dtype="uint8", name=PIXELS)


def takes_pixels(model: keras.Model) -> bool:
    """Whether `model` standardises its input itself (built since preprocessing moved in):
    it then takes uint8 pixels, as an ensemble of such networks does too."""
    return model.inputs[0].dtype == "uint8"


def with_preprocessing(model: keras.Model) -> keras.Model:
    """`model` taking uint8 pixels: itself when it already does, else the same network (the
    same weights, shared) behind a Standardise layer."""
    if takes_pixels(model):
        return model
    inputs = pixel_input()
    return keras.Model(inputs, model(Standardise()(inputs)), name=model.name)
