"""/promote: a registered model compared with the active one, and promoted."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ModelVersion
from db.registry import (
    active_model,
    get_model,
    promote,
)
from ml.better import Verdict, judge


def compare(candidate: ModelVersion, active: ModelVersion) -> Verdict:
    """ml.better's rule, the trainer's too: against the active model as the candidate's own
    run measured it beside itself, when it was the active one then; else the two rows'
    metrics, on the sets both were measured on alike."""
    rival = candidate.metrics.get("compared_with") or {}
    if rival.get("version") == active.version:
        # Both measured on the run's own test split, whatever the rows say of it (rows
        # registered before the split's version was kept with the rival say nothing).
        split = {"dataset": {"version": f"run of v{candidate.version}"}}
        return judge({**candidate.metrics, **split}, {**rival, **split})
    return judge(candidate.metrics, active.metrics)


@dataclass(frozen=True)
class PromotePlan:
    """What /promote N does: promote now (`done`), or ask first (`ask`), with the numbers."""

    candidate: ModelVersion
    active: ModelVersion | None
    comparison: Verdict | None

    @property
    def ask(self) -> bool:
        verdict = self.comparison
        if verdict is None:
            return False
        return not verdict.comparable or verdict.new < verdict.old  # type: ignore[operator]


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
