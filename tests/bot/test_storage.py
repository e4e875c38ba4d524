"""db.fsm.PostgresStorage and db.users over the real database."""

from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.states import Contribute
from db.fsm import PostgresStorage
from db.models import FsmState
from db.users import get_user, set_language, upsert_user, user_language


async def test_fsm_state_and_data_persist_and_idle_keys_vanish(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    key = StorageKey(bot_id=1, chat_id=42, user_id=42)
    other = StorageKey(bot_id=1, chat_id=43, user_id=43)
    storage = PostgresStorage(sessions)
    assert await storage.get_state(key) is None and await storage.get_data(key) == {}
    await storage.set_state(key, Contribute.photos)
    await storage.update_data(key, {"label": "happy", "pending": [{"sha256": "ab"}]})
    await storage.set_state(other, "Predict:photo")
    fresh = PostgresStorage(sessions)  # another process reading the same rows
    assert await fresh.get_state(key) == Contribute.photos.state
    assert await fresh.get_data(key) == {"label": "happy", "pending": [{"sha256": "ab"}]}
    assert await fresh.get_data(other) == {}
    await fresh.set_state(key, None)
    await fresh.set_data(key, {})
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FsmState)) == 1
    assert await storage.keys_with_state() == [storage.key_builder.build(other)]


async def test_users_upsert_and_language(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        user = await upsert_user(session, 7, username="a", first_name="A", telegram_language="en")
        assert user_language(user) == "en"
        user = await upsert_user(session, 7, username="b", first_name="B", telegram_language="de")
        assert (user.username, user_language(user)) == ("b", "ru")
        await set_language(session, 7, "en")
        await session.commit()
    async with sessions() as session:
        user = await get_user(session, 7)
        assert user is not None and user.language == "en" and user_language(user) == "en"
    assert user_language(None) == "ru"
