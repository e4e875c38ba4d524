"""LISTEN on the channels the schema's triggers NOTIFY: `prediction_requests`, `training_runs`
and `models` (each payload is the row id)."""

from collections.abc import Callable, Mapping

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

# What a lost or unreachable database raises here; the caller falls back to polling.
LISTEN_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError)


async def listen(
    engine: AsyncEngine, callbacks: Mapping[str, Callable[..., object]]
) -> asyncpg.Connection:
    """A connection of its own (LISTEN must outlive every pooled session) calling back per
    channel. Raises one of LISTEN_ERRORS."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(url, timeout=10)
    for channel, callback in callbacks.items():
        await connection.add_listener(channel, callback)
    return connection
