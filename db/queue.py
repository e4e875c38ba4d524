"""The prediction queue in PostgreSQL: requests are enqueued here and claimed by workers.

Inserting a row fires the `prediction_requests` NOTIFY (a trigger in the schema), which
wakes listening workers.
"""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PredictionRequest


async def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    user_id: int | None,
    message_id: int | None,
    blob_key: str,
    whole: bool = False,
) -> PredictionRequest:
    request = PredictionRequest(
        chat_id=chat_id, user_id=user_id, message_id=message_id, blob_key=blob_key, whole=whole
    )
    session.add(request)
    await session.flush()
    return request


async def depth(session: AsyncSession) -> int:
    """Requests not answered yet (queued or being processed)."""
    statement = select(func.count()).where(PredictionRequest.status.in_(("queued", "processing")))
    return await session.scalar(statement) or 0
