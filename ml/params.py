"""What a training run may be asked for, kept free of heavy imports: the bot checks /retrain's
arguments with it without loading Keras."""

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

# The keys of ml.architectures.ARCHITECTURES (a test keeps the two in step).
ARCH_NAMES: Final = ("seed_cnn", "emonet", "emonet40", "emonet48")
TRUE, FALSE = ("1", "yes", "true", "on", "да"), ("0", "no", "false", "off", "нет")
# What each whole-number parameter may be (inclusive); the bot says so when one is not.
RANGES: Final = {"epochs": (1, 500), "balance": (0, 1_000_000), "batch_size": (1, 4096)}

ENGLISH: Final = {
    "not_understood": "not understood: {word!r}; use key=value with a key of {keys}",
    "yes_no": "{name} is yes or no, not {value!r}",
    "whole_number": "{name} is a whole number from {low} to {high}, not {value!r}",
    "out_of_range": "{name} must be {low}–{high}, not {value}",
    "unknown_arch": "unknown arch {value!r}; one of {archs}",
    "unknown_keys": "unknown training parameters: {keys}",
}


class ParamError(ValueError):
    """A parameter that cannot be used; `code` and `values` let the bot say it in the user's
    language, the message is English (CLI, logs)."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(ENGLISH[code].format(**values))
        self.code = code
        self.values = values


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
    seed: int = 42
    # Warm start: a saved model of the same architecture whose weights training begins from.
    init: str | None = None


@dataclass
class JobParams:
    """A run's parameters (CLI flags, /retrain arguments or `training_runs.params`): what an
    admin may choose of TrainConfig, and what happens around the training."""

    arch: str = TrainConfig.arch
    epochs: int = TrainConfig.epochs
    balance: int = TrainConfig.balance
    promote: bool = False
    batch_size: int = TrainConfig.batch_size
    # Start from the active model's weights when it has this architecture.
    warm: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCH_NAMES:
            raise ParamError("unknown_arch", value=self.arch, archs=", ".join(ARCH_NAMES))
        for key, (low, high) in RANGES.items():
            if not low <= getattr(self, key) <= high:
                raise ParamError(
                    "out_of_range", name=key, low=low, high=high, value=getattr(self, key)
                )

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "JobParams":
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ParamError("unknown_keys", keys=", ".join(sorted(unknown)))
        return cls(**params)

    @classmethod
    def from_text(cls, text: str, **defaults: Any) -> "JobParams":
        """`epochs=30 arch=seed_cnn promote=no`, typed by each field's default; ValueError
        names the word it could not read."""
        params = dict(defaults)
        types = {f.name: type(f.default) for f in fields(cls)}
        for word in text.split():
            key, sep, value = word.partition("=")
            if not sep or key not in types:
                raise ParamError("not_understood", word=word, keys=", ".join(types))
            if types[key] is bool:
                if value.lower() not in TRUE + FALSE:
                    raise ParamError("yes_no", name=key, value=value)
                params[key] = value.lower() in TRUE
            elif types[key] is int:
                low, high = RANGES[key]
                try:
                    number = int(value)
                except ValueError:
                    raise ParamError(
                        "whole_number", name=key, low=low, high=high, value=value
                    ) from None
                params[key] = number
            else:
                params[key] = value
        return cls.from_dict(params)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_config(self, **choices: Any) -> TrainConfig:
        """The TrainConfig of this run; `choices` are the trainer's own (a warm start)."""
        return TrainConfig(
            arch=self.arch,
            epochs=self.epochs,
            balance=self.balance,
            batch_size=self.batch_size,
            **choices,
        )
