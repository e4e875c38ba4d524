"""db.outage.is_unreachable: what counts as "PostgreSQL cannot be reached", and what does not."""

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import make_engine, make_sessionmaker
from db.outage import is_unreachable
from tests.conftest import free_port


async def test_a_refused_connection_is_an_outage() -> None:
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(OSError) as raised:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert is_unreachable(raised.value)


async def test_a_connection_lost_mid_session_is_an_outage(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    async with sessions() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
        async with engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception) as raised:
            await session.execute(text("SELECT 1"))
    assert is_unreachable(raised.value)


async def test_other_errors_are_not_an_outage(engine: AsyncEngine) -> None:
    timed = make_sessionmaker(engine, statement_timeout_s=0.1)
    async with timed() as session:
        assert await session.scalar(text("SHOW statement_timeout")) == "100ms"
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT pg_sleep(1)"))
    assert not is_unreachable(raised.value)  # a statement timeout: a slow query, not an outage
    async with make_sessionmaker(engine)() as session:
        assert await session.scalar(text("SHOW statement_timeout")) == "0"
        with pytest.raises(IntegrityError) as raised:
            await session.execute(text("CREATE TEMP TABLE t (x int PRIMARY KEY)"))
            await session.execute(text("INSERT INTO t VALUES (1), (1)"))
    assert not is_unreachable(raised.value)
    # A network error talking to Telegram or S3 is an OSError too, raised outside the driver.
    try:
        raise aiohttp.ClientConnectorError(None, ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]
    except aiohttp.ClientConnectorError as exc:
        assert not is_unreachable(exc)
    try:
        raise ConnectionResetError(104, "reset by peer")
    except ConnectionResetError as exc:
        assert not is_unreachable(exc)
