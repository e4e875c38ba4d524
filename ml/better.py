"""The one rule that decides whether a model is better than another: the trainer's automatic
promotion and /promote both use it. Kept free of heavy imports (the bot reads it).

The sets it compares on, in this order of preference:
- the fixed protocol's sets that tell real faces apart best: ferplus-test (FER2013's test
  faces with the FER+ majority labels; needs the votes) and the real photos (needs the labelled
  photo set), their mean balanced accuracy, over those both models were measured on with the
  same number of images;
- otherwise the database's test split, when both were measured on the same version of it.
test-4 is not used: FER2013's own labels disagree with FER+ on many faces, and a model that
agrees with FER+ loses points there.
"""

from dataclasses import dataclass
from typing import Any, Final

from emobot.i18n import t

PROTOCOL_SETS: Final = ("ferplus_test", "realphotos")
DATABASE_SPLIT: Final = "test"  # the basis' name for the database's test split


@dataclass(frozen=True)
class Verdict:
    """Two models on the same sets (`basis`; empty when they share none), and their scores."""

    basis: tuple[str, ...]
    new: float | None
    old: float | None

    @property
    def comparable(self) -> bool:
        return bool(self.basis) and self.new is not None and self.old is not None

    @property
    def better(self) -> bool:
        return self.comparable and self.new > self.old  # type: ignore[operator]


def _balanced(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("balanced_accuracy")
    return float(value) if isinstance(value, int | float) else None


def _same_split(new: dict[str, Any], old: dict[str, Any]) -> bool:
    version = (new.get("dataset") or {}).get("version")
    return version is not None and version == (old.get("dataset") or {}).get("version")


def judge(new: dict[str, Any], old: dict[str, Any]) -> Verdict:
    """`new` and `old`: a model's metrics as the registry keeps them (each protocol set under
    its name, the database's test split at the top with `dataset.version`)."""
    shared = [
        key
        for key in PROTOCOL_SETS
        if isinstance(new.get(key), dict)
        and isinstance(old.get(key), dict)
        and new[key].get("n")
        and new[key].get("n") == old[key].get("n")
        and _balanced(new[key]) is not None
        and _balanced(old[key]) is not None
    ]
    if shared:
        mean = [sum(_balanced(m[k]) or 0.0 for k in shared) / len(shared) for m in (new, old)]
        return Verdict(tuple(shared), mean[0], mean[1])
    if _same_split(new, old):
        return Verdict((DATABASE_SPLIT,), _balanced(new), _balanced(old))
    return Verdict((), _balanced(new), _balanced(old))


def unsure_below(metrics: dict[str, Any]) -> float | None:
    """The threshold a model was calibrated with (below it an answer is unsure), if any."""
    value = (metrics.get("calibration") or {}).get("unsure_below")
    return float(value) if isinstance(value, int | float) else None


def verdict_text(lang: str, verdict: Verdict, new: int, old: int) -> str:
    """What the rule compared, and the two numbers, for the /retrain report and /promote."""

    def shown(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    sets = ", ".join(t(lang, f"better.set.{key}") for key in verdict.basis)
    if len(verdict.basis) > 1:
        basis = t(lang, "better.basis.sets", sets=sets)
    elif verdict.basis:
        basis = t(lang, "better.basis.one", sets=sets)
    else:
        basis = t(lang, "better.basis.none")
    return t(
        lang,
        "better.numbers",
        basis=basis,
        new=new,
        new_value=shown(verdict.new),
        old=old,
        old_value=shown(verdict.old),
    )
