"""LISTEN on the channels the schema's triggers NOTIFY: `prediction_requests`, `training_runs`
and `models` (each payload is the row id)."""

from collections.abc import Callable, Mapping

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

# What a lost or unreachable database raises here; the caller falls back to polling.
LISTEN_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError)


def listen_dsn(url: URL) -> str:
    """asyncpg's own DSN for the engine's URL. SQLAlchemy hands `?ssl=require` (how a managed
    database's URL asks for TLS) to asyncpg as an argument; in a DSN asyncpg reads `sslmode`,
    and would send `ssl` to the server as a setting, which it refuses."""
    url = url.set(drivername="postgresql")
    if "ssl" in url.query:
        url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": url.query["ssl"]})
    return url.render_as_string(hide_password=False)


async def listen(
    engine: AsyncEngine, callbacks: Mapping[str, Callable[..., object]]
) -> asyncpg.Connection:
    """A connection of its own (LISTEN must outlive every pooled session) calling back per
    channel. Raises one of LISTEN_ERRORS."""
    connection = await asyncpg.connect(listen_dsn(engine.url), timeout=10)
    for channel, callback in callbacks.items():
        await connection.add_listener(channel, callback)
    return connection
