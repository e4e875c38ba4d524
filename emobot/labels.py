"""The class vocabulary every package shares: the four emotion classes, how FER2013's seven
emotions map onto them, and the dataset's splits.

Imports nothing: the database models, the bot, `ml/` and the trainer all import it.
"""

from typing import Final

CLASSES: Final = ("negative", "happy", "surprise", "neutral")
CLASS_INDEX: Final = {name: i for i, name in enumerate(CLASSES)}

FER_EMOTIONS: Final = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FER_TO_CLASS: Final = {
    "angry": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sad": "negative",
    "happy": "happy",
    "surprise": "surprise",
    "neutral": "neutral",
}

SPLITS: Final = ("train", "test")
