"""Taking Telegram update ids (`seen_updates`): once per id across sessions, released by a
rollback, old ids forgotten."""

import asyncio
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import SeenUpdate
from db.updates import forget_updates, take_update


async def test_an_update_is_taken_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        assert await take_update(session, 10)
    async with sessions.begin() as session:
        assert not await take_update(session, 10)
        assert await take_update(session, 11)


async def test_a_second_taker_waits_for_the_first_and_gets_it_after_a_rollback(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as first, sessions() as second:
        assert await take_update(first, 20)
        waiting = asyncio.create_task(take_update(second, 20))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the first transaction's row
        await first.rollback()  # its handler failed: the update is not taken
        assert await asyncio.wait_for(waiting, 5)
        await second.commit()


async def test_old_ids_are_forgotten(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        for update_id in (30, 31):
            await take_update(session, update_id)
        await session.execute(
            update(SeenUpdate)
            .where(SeenUpdate.update_id == 30)
            .values(seen_at=SeenUpdate.seen_at - timedelta(days=3))
        )
    async with sessions.begin() as session:
        assert await forget_updates(session, timedelta(days=2)) == 1
        assert list(await session.scalars(select(SeenUpdate.update_id))) == [31]
