"""Telegram updates taken by a bot process (`seen_updates`), so that each is handled once
however many bot processes receive it."""

from datetime import timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import SeenUpdate


async def take_update(session: AsyncSession, update_id: int) -> bool:
    """Record the update in the session's transaction; False when it was taken already.

    While another transaction holds the same id, this waits for its outcome: committed, the
    update is not ours (False); rolled back (its handler failed), it is ours to handle.
    """
    taken = await session.scalar(
        insert(SeenUpdate)
        .values(update_id=update_id)
        .on_conflict_do_nothing()
        .returning(SeenUpdate.update_id)
    )
    return taken is not None


async def forget_updates(session: AsyncSession, older_than: timedelta) -> int:
    """Drop ids older than Telegram keeps an update for redelivery; returns how many."""
    result = await session.execute(
        delete(SeenUpdate).where(SeenUpdate.seen_at < func.now() - older_than)
    )
    return result.rowcount or 0
