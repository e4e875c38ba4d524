"""What a training run may be asked for, kept free of heavy imports: the bot checks /retrain's
arguments with it without loading Keras."""

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

# The keys of ml.architectures.ARCHITECTURES (a test keeps the two in step).
ARCH_NAMES: Final = ("seed_cnn", "emonet", "emonet48")
TRUE, FALSE = ("1", "yes", "true", "on", "да"), ("0", "no", "false", "off", "нет")


@dataclass
class JobParams:
    """A run's parameters (CLI flags, /retrain arguments or `training_runs.params`)."""

    arch: str = "emonet"
    # About 25 minutes per 10 epochs of emonet over all of FER2013 on 2 CPU cores.
    epochs: int = 15
    balance: int = 0
    promote: bool = False
    batch_size: int = 64
    # Start from the active model's weights when it has this architecture.
    warm: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCH_NAMES:
            raise ValueError(f"unknown arch {self.arch!r}; one of {', '.join(ARCH_NAMES)}")
        if not 1 <= self.epochs <= 500:
            raise ValueError(f"epochs must be 1–500, not {self.epochs}")
        if self.balance < 0 or self.batch_size < 1:
            raise ValueError("balance must be ≥ 0 and batch_size ≥ 1")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "JobParams":
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(sorted(unknown))}")
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
                raise ValueError(f"not understood: {word!r}; use key=value with a key of "
                                 f"{', '.join(types)}")  # fmt: skip
            if types[key] is bool:
                if value.lower() not in TRUE + FALSE:
                    raise ValueError(f"{key} is yes or no, not {value!r}")
                params[key] = value.lower() in TRUE
            elif types[key] is int:
                if not value.isdigit():
                    raise ValueError(f"{key} is a whole number, not {value!r}")
                params[key] = int(value)
            else:
                params[key] = value
        return cls.from_dict(params)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
