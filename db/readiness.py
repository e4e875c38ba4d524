"""Whether a dataset can train a model worth registering: enough trainable images of every class,
and a test split with every class to measure the model on; and what to say when it cannot.

Kept free of heavy imports: the bot checks /retrain with it without loading Keras, the trainer
and `emobot train` say the same thing.
"""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from db.samples import test_counts, trainable_counts
from emobot.i18n import label_name, t
from emobot.labels import CLASSES

# Where FER2013 comes from, for the messages that tell how to load it.
FER2013_SOURCE = "https://www.kaggle.com/datasets/msambare/fer2013"


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
        """What is missing and how to fix it, in `lang`."""
        lines = [t(lang, "readiness.title")]
        for part, per_class, least in (
            ("train", self.train, self.min_train),
            ("test", self.test, self.min_test),
        ):
            if any(per_class.get(c, 0) < least for c in CLASSES):
                shown = ", ".join(f"{label_name(lang, c)} {per_class.get(c, 0)}" for c in CLASSES)
                lines.append("– " + t(lang, f"readiness.{part}", min=least, counts=shown))
        lines.append(how_to_import(lang, archive))
        return "\n".join(lines)


def how_to_import(lang: str, archive: Path) -> str:
    state = t(lang, "readiness.found") if archive.is_file() else t(lang, "readiness.missing")
    return "\n".join(
        (
            t(lang, "readiness.import", path=archive),
            t(lang, "readiness.source", source=FER2013_SOURCE, archive=archive, state=state),
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
