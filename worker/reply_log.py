"""Recording sent replies in as few UPDATEs as possible."""

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from db import queue


class ReplyLog:
    """Records sent replies with as few UPDATEs as possible (group commit).

    Each send adds its request id and waits; whoever gets the lock writes every id waiting
    by then in one UPDATE. A reply is recorded by the UPDATE running when it returns or by the
    next one, instead of each reply paying for its own transaction and pool connection.
    `write` runs a step in a transaction, waiting out database outages: a reply sent while
    PostgreSQL is away is recorded as soon as it is back (before any new claim).
    """

    def __init__(
        self, write: Callable[[Callable[[AsyncSession], Awaitable[set[int]]]], Awaitable[set[int]]]
    ):
        self._write = write
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    async def record(self, request_id: int) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = done
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, {}
                try:
                    await self._write(lambda s: queue.mark_replied(s, list(batch)))
                except Exception as exc:
                    for future in batch.values():
                        future.set_exception(exc)
                else:
                    for future in batch.values():
                        future.set_result(None)
        await done
