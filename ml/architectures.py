"""CNN definitions, Keras 3 API only so that training also runs under the JAX backend.

Each takes uint8 faces and standardises them itself (ml/layers.py).
"""

from collections.abc import Callable

import keras
from keras import layers

from emobot.labels import CLASSES
from ml.layers import Standardise, pixel_input


def seed_cnn() -> keras.Model:
    """The original project's network: 3 conv blocks, 3 dense layers, 2.8 M parameters."""
    inputs = pixel_input()
    x = Standardise()(inputs)
    for filters in (64, 128, 256):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    for units in (256, 128, 64):
        x = layers.Dense(units, activation="relu")(x)
        # 0.1, not the usual 0.5: behind the 9,216-wide Flatten, heavier dropout keeps the
        # network at the class prior for epochs on FER2013 (a 30-epoch run with 0.5/0.5/0.3
        # collapsed to a uniform output, loss ln 4), while 0.1 starts learning within an epoch
        # and reaches 0.755 balanced accuracy on test-4 after 30 epochs.
        x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def _conv_bn(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    # Momentum 0.9: the moving statistics keep up with the network early in training, so
    # validation after the first epochs measures the network rather than stale statistics.
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.Activation("relu")(x)


def emonet(width: int = 32) -> keras.Model:
    """A VGG-style network with two 3×3 convs per stage, batch norm and global pooling.

    Four stages at 48, 24, 12 and 6 pixels with `width`·(1, 2, 4, 8) channels. The stage
    outputs are pooled and the head is small, so most parameters do useful spatial work and
    inference stays cheap on a CPU (about 0.12 GMAC per face at width 32).
    """
    inputs = pixel_input()
    x = Standardise()(inputs)
    for stage, mult in enumerate((1, 2, 4, 8)):
        x = _conv_bn(x, width * mult)
        x = _conv_bn(x, width * mult)
        if stage < 3:
            x = layers.MaxPooling2D()(x)
        if stage > 0:
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(width * 8, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"emonet{width}")


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "seed_cnn": seed_cnn,
    "emonet": emonet,
    "emonet40": lambda: emonet(40),
    "emonet48": lambda: emonet(48),
}
