"""/promote: a registered model compared with the active one, and promoted."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ModelVersion
from db.registry import (
    active_model,
    get_model,
    promote,
)
from emobot.i18n import t


@dataclass(frozen=True)
class Comparison:
    """A model beside the active one, on the same test split when both were measured on one."""

    basis: str  # test_4 | run | none
    new: float | None
    old: float | None

    @property
    def worse_or_unknown(self) -> bool:
        return self.basis == "none" or self.new is None or self.old is None or self.new < self.old


def _balanced(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("balanced_accuracy")
    return value if isinstance(value, float) else None


def compare(candidate: ModelVersion, active: ModelVersion) -> Comparison:
    """Balanced accuracy on FER2013's test-4 when both have it over the same images; else the
    active model measured by the candidate's own run on its test split; else not comparable."""
    new_4, old_4 = candidate.metrics.get("test_4", {}), active.metrics.get("test_4", {})
    if new_4.get("n") and new_4.get("n") == old_4.get("n"):
        return Comparison("test_4", _balanced(new_4), _balanced(old_4))
    rival = candidate.metrics.get("compared_with") or {}
    if rival.get("version") == active.version:
        return Comparison("run", _balanced(candidate.metrics), _balanced(rival))
    new = _balanced(new_4) or _balanced(candidate.metrics)
    return Comparison("none", new, _balanced(old_4) or _balanced(active.metrics))


def comparison_text(lang: str, candidate: int, active: int, comparison: Comparison) -> str:
    def shown(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    return t(
        lang,
        "admin.promote.numbers",
        basis=t(lang, f"admin.promote.basis.{comparison.basis}"),
        new=candidate,
        new_value=shown(comparison.new),
        old=active,
        old_value=shown(comparison.old),
    )


@dataclass(frozen=True)
class PromotePlan:
    """What /promote N does: promote now (`done`), or ask first (`ask`), with the numbers."""

    candidate: ModelVersion
    active: ModelVersion | None
    comparison: Comparison | None

    @property
    def ask(self) -> bool:
        return self.comparison is not None and self.comparison.worse_or_unknown


async def plan_promotion(session: AsyncSession, version: int) -> PromotePlan:
    """Raises db.registry.UnknownModel."""
    candidate = await get_model(session, version)
    active = await active_model(session)
    if active is None or active.id == candidate.id:
        return PromotePlan(candidate, active, None)
    return PromotePlan(candidate, active, compare(candidate, active))


async def promote_version(session: AsyncSession, version: int) -> ModelVersion:
    """Raises db.registry.UnknownModel."""
    model = await promote(session, version)
    # Before the reply: the NOTIFY that makes the workers switch goes out on commit, and the
    # admin is told the model is active only once it is.
    await session.commit()
    return model
