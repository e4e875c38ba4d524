"""The Alembic revisions and the SQLAlchemy models describe the same schema."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import make_engine
from db.migrate import alembic_config, current, downgrade, upgrade
from db.models import Base
from tests.conftest import PG_ADMIN_DSN


@pytest.fixture
async def empty_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of its own, so up and down runs leave the shared one alone."""
    name = f"emobot_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(database_url.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    await engine.dispose()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_to_head_then_downgrade_to_base(empty_engine: AsyncEngine) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()  # one head only
    await upgrade(empty_engine)
    assert await current(empty_engine) == head
    assert {t.name for t in Base.metadata.sorted_tables} <= await table_names(empty_engine)

    await downgrade(empty_engine)
    assert await current(empty_engine) is None
    assert await table_names(empty_engine) == {"alembic_version"}

    await upgrade(empty_engine)  # and up again: downgrade removed everything it created
    assert await current(empty_engine) == head


async def test_consent_given_before_versions_counts_as_the_first_text(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade(empty_engine, "0002")  # before the consent version (0003)
    async with empty_engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO users (id, consent_at) VALUES (1, now()), (2, NULL)"
        )
    await upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT id, consent_version FROM users ORDER BY id")
        assert rows.all() == [(1, 1), (2, None)]


async def test_ferplus_votes_are_added_to_existing_samples_and_removed_again(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade(empty_engine, "0003")
    async with empty_engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO samples (sha256, blob_key, label, split, source, width, height, "
            "size_bytes) VALUES ('ab', 'images/ab', 'happy', 'train', 'fer2013', 48, 48, 1)"
        )
    await upgrade(empty_engine, "0004")
    async with empty_engine.begin() as conn:
        assert (await conn.exec_driver_sql("SELECT ferplus_votes FROM samples")).scalar() is None
        await conn.exec_driver_sql(
            """UPDATE samples SET ferplus_votes = '{"train/happy/a.jpg": [0, 9, 1]}'"""
        )
    await downgrade(empty_engine, "0003")
    async with empty_engine.connect() as conn:
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("samples"))
        assert "ferplus_votes" not in {c["name"] for c in columns}
        assert (await conn.exec_driver_sql("SELECT label FROM samples")).scalar() == "happy"


async def test_requests_and_runs_from_before_0006_speak_their_users_language(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade(empty_engine, "0005")
    async with empty_engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO users (id, language, telegram_language) VALUES "
            "(1, 'en', 'ru'), (2, NULL, 'en-GB'), (3, NULL, 'de'), (4, 'ru', 'en')"
        )
        await conn.exec_driver_sql(
            "INSERT INTO prediction_requests (chat_id, user_id, blob_key) VALUES "
            "(1, 1, 'k'), (2, 2, 'k'), (3, 3, 'k'), (4, 4, 'k'), (5, NULL, 'k')"
        )
        await conn.exec_driver_sql(
            "INSERT INTO training_runs (requested_by, status) VALUES (2, 'done'), (NULL, 'done')"
        )
    await upgrade(empty_engine, "0006")
    async with empty_engine.connect() as conn:
        requests = await conn.exec_driver_sql(
            "SELECT language FROM prediction_requests ORDER BY chat_id"
        )
        assert requests.scalars().all() == ["en", "en", "ru", "ru", "ru"]
        runs = await conn.exec_driver_sql("SELECT language FROM training_runs ORDER BY id")
        assert runs.scalars().all() == ["en", "ru"]


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_inserting_a_prediction_request_notifies_listeners(engine: AsyncEngine) -> None:
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(url)
    received: list[str] = []
    await listener.add_listener("prediction_requests", lambda *args: received.append(args[3]))
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO prediction_requests (chat_id, blob_key) VALUES (1, 'images/ab/x')"
        )
    for _ in range(50):
        if received:
            break
        await listener.execute("SELECT 1")  # lets the notification arrive
    await listener.close()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM prediction_requests")
    assert len(received) == 1 and received[0].isdigit()
