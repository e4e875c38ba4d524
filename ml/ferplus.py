"""FER+ crowd votes for FER2013's files, and the labels built from them.

FER+ (Barsoum et al., 2016) had ten people label every FER2013 image with one of eight emotions,
"unknown" or "not a face". Their votes are much cleaner labels than FER2013's own: many FER2013
"sad", "fear" and "angry" faces are neutral to most of them. The votes file is
`../shared/data/ferplus/fer2013_ferplus_votes.csv` (its README: one row per file of
fer2013.zip); it is read from there and never copied into the repository.
"""

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from emobot.labels import CLASS_INDEX, CLASSES

# The vote columns, in the file's order (ties go to the first: the protocol's rule).
COLUMNS: Final = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
EMOTION_CLASS: Final = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "negative",
    "anger": "negative",
    "disgust": "negative",
    "fear": "negative",
    "contempt": "negative",
}
# (10, 4): emotion votes summed into our classes; "unknown" and "not a face" count for none.
_TO_CLASSES = np.zeros((len(COLUMNS), len(CLASSES)), np.float32)
for _column, _class in EMOTION_CLASS.items():
    _TO_CLASSES[COLUMNS.index(_column), CLASS_INDEX[_class]] = 1


@dataclass(frozen=True)
class Votes:
    counts: tuple[int, ...]  # one per column of COLUMNS
    ambiguous_duplicate: bool = False  # FER2013 has pixel-identical copies voted differently

    @property
    def top(self) -> str | None:
        """The column with most votes, the first on ties; None without any vote."""
        if not any(self.counts):
            return None
        return COLUMNS[int(np.argmax(self.counts))]

    def majority(self) -> int | None:
        """The protocol's label (ferplus-test): the top column mapped to our classes; None when
        the top is "unknown" or "not a face", or there are no votes."""
        top = self.top
        return CLASS_INDEX[EMOTION_CLASS[top]] if top in EMOTION_CLASS else None

    def distribution(self) -> np.ndarray | None:
        """The emotion votes as a distribution over our four classes (a soft training target);
        None for an image that is no trainable face (its majority is None)."""
        if self.majority() is None:
            return None
        summed = np.asarray(self.counts, np.float32) @ _TO_CLASSES
        return summed / summed.sum()


def mean_distribution(copies: Iterable[Votes]) -> np.ndarray | None:
    """The target of an image stored once but voted on as several byte-identical files: the
    mean of their distributions (as `ml.dataset.load_archive` takes it); None when no copy is
    a trainable face."""
    shares = [d for v in copies if (d := v.distribution()) is not None]
    return np.mean(shares, axis=0) if shares else None


def read_votes(path: Path) -> dict[str, Votes]:
    """The votes by archive file name (`train/angry/Training_1.jpg`); ValueError for a file
    that is not a votes file."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file", *COLUMNS) if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} is not a FER+ votes file: no column {', '.join(missing)}")
        return {
            row["file"]: Votes(
                tuple(int(row[c] or 0) for c in COLUMNS), row.get("ambiguous_duplicate") == "1"
            )
            for row in reader
        }
