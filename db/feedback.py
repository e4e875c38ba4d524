"""Verdicts on the bot's answers (feedback): what a person says each face of their photo shows,
against what the model said; and how right the model is by them."""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Feedback, PredictionRequest
from emobot.labels import CLASSES


async def request_of(
    session: AsyncSession, request_id: int, user_id: int
) -> PredictionRequest | None:
    """The person's own answered request with faces; None for anyone else's (a forged
    button), an unanswered one, or one without faces."""
    request = await session.get(PredictionRequest, request_id)
    if (
        request is None
        or request.user_id != user_id
        or request.chat_id != user_id  # answers in groups take no feedback
        or not (request.result or {}).get("faces")
    ):
        return None
    return request


def predicted_labels(request: PredictionRequest) -> list[str]:
    """The model's class for each face of the answer (the most probable)."""
    assert request.result is not None
    return [
        CLASSES[max(range(len(CLASSES)), key=lambda i: face["probs"][i])]
        for face in request.result["faces"]
    ]


async def record(
    session: AsyncSession, request: PredictionRequest, face: int, actual: str
) -> Feedback:
    """The person's verdict on one face (a later one replaces it); returns the row."""
    assert request.user_id is not None
    values = {
        "predicted": predicted_labels(request)[face],
        "actual": actual,
        "model_version": request.model_version,
    }
    row = await session.scalar(
        insert(Feedback)
        .values(request_id=request.id, user_id=request.user_id, face=face, **values)
        .on_conflict_do_update(
            index_elements=[Feedback.request_id, Feedback.face],
            set_={**values, "updated_at": func.now()},
        )
        .returning(Feedback)
        # A row this session read before is refreshed with what was written.
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def verdicts(session: AsyncSession, request_id: int) -> dict[int, Feedback]:
    """The request's verdicts by face."""
    rows = await session.scalars(select(Feedback).where(Feedback.request_id == request_id))
    return {row.face: row for row in rows}


@dataclass
class Accuracy:
    """Verdicts on one model version's answers within a window."""

    model_version: int | None
    total: int = 0
    right: int = 0
    # confusion[actual][predicted]: how often a face the person calls `actual` was answered
    # `predicted`.
    confusion: dict[str, dict[str, int]] = field(
        default_factory=lambda: {a: dict.fromkeys(CLASSES, 0) for a in CLASSES}
    )

    @property
    def share(self) -> float:
        return self.right / self.total if self.total else 0.0


async def accuracy(session: AsyncSession, days: int) -> list[Accuracy]:
    """Per model version (newest first): how many faces got a verdict in the last `days`
    days, how many the model had right, and the confusion."""
    rows = await session.execute(
        select(Feedback.model_version, Feedback.actual, Feedback.predicted, func.count())
        .where(Feedback.updated_at > func.now() - timedelta(days=days))
        .group_by(Feedback.model_version, Feedback.actual, Feedback.predicted)
    )
    by_version: dict[int | None, Accuracy] = {}
    for version, actual, predicted, count in rows.all():
        item = by_version.setdefault(version, Accuracy(version))
        item.total += count
        item.right += count if actual == predicted else 0
        item.confusion[actual][predicted] += count
    return sorted(by_version.values(), key=lambda a: -(a.model_version or 0))
