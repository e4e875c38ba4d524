"""Small networks for tests: fresh ones, and files in the form saved before preprocessing moved
into the model (registered models of that time still serve)."""

from pathlib import Path

import keras

from ml.architectures import emonet
from ml.inference import flatbuffer_path


def network(seed: int, width: int = 8) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return emonet(width)


def saved_before_preprocessing_moved_in(model: keras.Model, path: Path) -> Path:
    """`model`'s network taking standardised float faces, as files saved before did, written
    to `path` with its float32 flatbuffer beside it (their layers are then their own, as a
    loaded file's are)."""
    inputs = keras.Input((48, 48, 1))
    x = inputs
    for layer in model.layers[2:]:  # past the input and Standardise
        x = layer(x)
    old = keras.Model(inputs, x)
    old.save(path)
    old.export(str(flatbuffer_path(path)), format="litert", verbose=False)
    return path
