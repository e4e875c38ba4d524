"""Whether a dataset can train a model worth registering: enough trainable images of every class,
and a test split with every class to measure the model on; and what to say when it cannot.

Kept free of heavy imports: the bot checks /retrain with it without loading Keras, the trainer
and `emobot train` say the same thing.
"""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from db.samples import test_counts, trainable_counts
from emobot.labels import CLASSES, DISPLAY_NAMES

# Where FER2013 comes from, for the messages that tell how to load it.
FER2013_SOURCE = "https://www.kaggle.com/datasets/msambare/fer2013"

TEXTS = {
    "ru": {
        "title": "Обучать пока не на чем:",
        "train": "изображений для обучения по классам (нужно не меньше {min}): {counts}",
        "test": "тестовых изображений по классам (нужно не меньше {min}): {counts}",
        "import": "Загрузите FER2013 (обучающая и тестовая выборки): emobot import-fer2013 {path}",
        "source": "Архив — FER-2013 в раскладке Kaggle ({source}); путь к нему — настройка "
        "FER2013_ZIP, сейчас {archive} ({state}).",
        "found": "файл есть",
        "missing": "файла нет",
    },
    "en": {
        "title": "Not enough data to train a model:",
        "train": "trainable images per class (at least {min} each): {counts}",
        "test": "test images per class (at least {min} each): {counts}",
        "import": "Load FER2013 (train and test split): emobot import-fer2013 {path}",
        "source": "The archive is FER-2013 in its Kaggle layout ({source}); the FER2013_ZIP "
        "setting gives its path, now {archive} ({state}).",
        "found": "found",
        "missing": "no file there",
    },
}


@dataclass(frozen=True)
class Readiness:
    train: dict[str, int]  # trainable images per class
    test: dict[str, int]  # test images per class
    min_train: int
    min_test: int

    @property
    def ready(self) -> bool:
        return all(self.train.get(c, 0) >= self.min_train for c in CLASSES) and all(
            self.test.get(c, 0) >= self.min_test for c in CLASSES
        )

    @property
    def empty(self) -> bool:
        return not any(self.train.values()) and not any(self.test.values())

    def explain(self, lang: str, archive: Path) -> str:
        """What is missing and how to fix it, in `lang` (English when not supported)."""
        texts = TEXTS.get(lang, TEXTS["en"])
        names = DISPLAY_NAMES.get(lang, DISPLAY_NAMES["en"])
        lines = [texts["title"]]
        for part, per_class, least in (
            ("train", self.train, self.min_train),
            ("test", self.test, self.min_test),
        ):
            if any(per_class.get(c, 0) < least for c in CLASSES):
                shown = ", ".join(f"{names[c]} {per_class.get(c, 0)}" for c in CLASSES)
                lines.append("– " + texts[part].format(min=least, counts=shown))
        lines.append(how_to_import(lang, archive))
        return "\n".join(lines)


def how_to_import(lang: str, archive: Path) -> str:
    texts = TEXTS.get(lang, TEXTS["en"])
    state = texts["found" if archive.is_file() else "missing"]
    return "\n".join(
        (
            texts["import"].format(path=archive),
            texts["source"].format(source=FER2013_SOURCE, archive=archive, state=state),
        )
    )


async def readiness(session: AsyncSession, min_train: int, min_test: int) -> Readiness:
    """Whether a training run may start, from the counts in the database."""
    return Readiness(
        await trainable_counts(session), await test_counts(session), min_train, min_test
    )


class DatasetNotReady(ValueError):
    """Training refused: the dataset lacks trainable or test images. The message is English;
    `readiness.explain(lang, archive)` says it in the user's language."""

    def __init__(self, readiness: Readiness, archive: Path):
        super().__init__(readiness.explain("en", archive))
        self.readiness = readiness
        self.archive = archive
