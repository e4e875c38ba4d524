"""How a model is trained, kept free of heavy imports (the bot and the CLI read the defaults
without loading Keras)."""

from dataclasses import dataclass
from typing import Final

# The keys of ml.architectures.ARCHITECTURES (a test keeps the two in step).
ARCH_NAMES: Final = ("seed_cnn", "emonet", "emonet40", "emonet48")


@dataclass
class TrainConfig:
    """How a model is trained (ml.training.train): the one source of training defaults, for
    the trainer, `emobot train`, /retrain and `ml.train_archive`."""

    arch: str = "emonet"
    # About 25 minutes per 10 epochs of emonet over all of FER2013 on 2 CPU cores.
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 1e-3
    val_fraction: float = 0.1
    # Seed-style balancing: cap every class at this many training images (0 = keep all).
    balance: int = 0
    class_weights: bool = True
    patience: int = 10
    # The run's randomness: dropout, the batches' order and their augmentation. Ensemble
    # members differ in it.
    seed: int = 42
    # The validation split's: kept apart from `seed` so that runs with other seeds (ensemble
    # members) are chosen and compared on the same held-out faces, none of which they trained on.
    split_seed: int = 42
    # Warm start: a saved model of the same architecture whose weights training begins from.
    init: str | None = None
    # Distillation: a packaged model (an ensemble, say) whose answers on the training faces
    # make up this share of the targets, the labels (or FER+ votes) the rest.
    teacher: str | None = None
    teacher_weight: float = 0.5
