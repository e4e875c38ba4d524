"""What a training run may be asked for (CLI flags, /retrain's words, `training_runs.params`),
kept free of heavy imports: the bot checks /retrain's arguments with it without loading Keras."""

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from emobot.i18n import t
from ml.params import ARCH_NAMES, TrainConfig

TRUE, FALSE = ("1", "yes", "true", "on", "да"), ("0", "no", "false", "off", "нет")
# What each whole-number parameter may be (inclusive); the bot says so when one is not.
RANGES: Final = {"epochs": (1, 500), "balance": (0, 1_000_000), "batch_size": (1, 4096)}


class ParamError(ValueError):
    """A parameter that cannot be used; `code` and `values` let the bot say it in the user's
    language (`admin.retrain.bad.<code>`), the message is English (CLI, logs)."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(t("en", f"admin.retrain.bad.{code}", **values))
        self.code = code
        self.values = values


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
        given: set[str] = set()
        for word in text.split():
            key, sep, value = word.partition("=")
            if not sep or key not in types:
                raise ParamError("not_understood", word=word, keys=", ".join(types))
            if key in given:  # `epochs=1 epochs=2`: which one was meant is a guess
                raise ParamError("repeated", name=key)
            given.add(key)
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
