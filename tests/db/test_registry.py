import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.registry import (
    UnknownModel,
    active_model,
    list_models,
    promote,
    queue_training_run,
    register_model,
)


async def test_versions_increase_and_one_model_is_active(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        first = await register_model(session, blob_key="models/1.keras", arch="emonet", metrics={})
        second = await register_model(session, blob_key="models/2.keras", arch="emonet", metrics={})
        assert (first.version, second.version) == (1, 2)
        assert await active_model(session) is None
        await promote(session, 1)
        await promote(session, 2)
    async with sessions() as session:
        active = await active_model(session)
        assert active is not None and active.version == 2
        assert [m.version for m in await list_models(session)] == [2, 1]
        assert sum(m.is_active for m in await list_models(session)) == 1


async def test_promoting_an_unknown_version_fails(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        try:
            await promote(session, 7)
        except UnknownModel:
            pass
        else:
            raise AssertionError("promote(7) should fail")


async def test_only_one_training_run_at_a_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        assert await queue_training_run(session, requested_by=None, chat_id=1) is not None
        assert await queue_training_run(session, requested_by=None, chat_id=2) is None


async def test_concurrent_registrations_each_get_their_own_version(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Trainings finishing at once (the trainer and `emobot train`): none fails on the unique
    version after its whole run; each transaction stays open a while, as the trainer's does."""

    async def register(i: int) -> int:
        async with sessions.begin() as session:
            model = await register_model(
                session, blob_key=f"models/{i}.keras", arch="emonet", metrics={}
            )
            await asyncio.sleep(0.05)
            return model.version

    versions = await asyncio.gather(*(register(i) for i in range(6)))
    assert sorted(versions) == list(range(1, 7))
    async with sessions() as session:
        assert sorted(m.version for m in await list_models(session)) == list(range(1, 7))
