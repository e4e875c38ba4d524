"""Alembic environment: async engine from the platform settings, or a connection handed in."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


def url_from_settings() -> str:
    from db.engine import database_url
    from emobot.settings import get_settings

    return database_url(get_settings())


if context.is_offline_mode():
    context.configure(url=url_from_settings(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    asyncio.run(run_async(config.attributes.get("url") or url_from_settings()))
