"""Riding out a database outage (a restart, a failover): the worker pauses instead of failing.

The first database step to fail starts one probe that pings PostgreSQL every PROBE_SECONDS;
every step that fails meanwhile waits for that probe, then runs again. Nothing is given up or
answered with an error because the database was away, and no attempt is counted: the batch in
hand is kept in memory (its results, the replies sent but not yet recorded) and carried on
with once PostgreSQL answers.

Leases run out during a long outage. After it, each worker first takes back what it holds
(saving a result or recording a reply renews or closes its rows), and claims new work only
SETTLE_SECONDS after the database came back: a worker that resumed a moment earlier does not
take over a batch whose worker is alive and about to carry on with it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import ping

log = logging.getLogger(__name__)
T = TypeVar("T")

# What PostgreSQL being unreachable raises (through SQLAlchemy or asyncpg directly).
DATABASE_ERRORS = (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError)
PROBE_SECONDS = 0.25
PING_TIMEOUT_S = 2.0
SETTLE_SECONDS = 1.0
# A step failing this many times in a row while the database answers pings at once is not an
# outage (a bug, a constraint): it is raised.
MAX_FAILURES_WHILE_UP = 3


class Stopping(Exception):
    """The worker was asked to stop while it waited for the database."""


class DatabaseWatch:
    def __init__(self, engine: AsyncEngine, stopping: asyncio.Event):
        self.engine = engine
        self._stopping = stopping
        self._up = asyncio.Event()
        self._up.set()
        self._probe: asyncio.Task[None] | None = None
        self.resumed_at = float("-inf")  # time.monotonic() when the last outage ended
        self.outages = 0
        self._waited = False  # the last probe had to wait: the database was really away

    @property
    def up(self) -> bool:
        return self._up.is_set()

    async def wait(self, error: BaseException) -> bool:
        """After a step failed with `error`: wait until the database answers again. Returns
        whether it had to wait (False: it answered at once, so the failure was something
        else). Raises Stopping if the worker is stopped meanwhile."""
        if self.up:
            self._up.clear()
            self._probe = asyncio.create_task(self._probe_until_up(error, time.monotonic()))
        probe = self._probe
        assert probe is not None
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({probe, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not self.up:
            raise Stopping
        return self._waited

    async def _probe_until_up(self, error: BaseException, since: float) -> None:
        tries = 0
        while not self._stopping.is_set():
            tries += 1
            try:
                await asyncio.wait_for(ping(self.engine), PING_TIMEOUT_S)
            except (*DATABASE_ERRORS, TimeoutError):
                if tries == 1:
                    self.outages += 1
                    log.warning("database unreachable (%r): pausing until it answers", error)
                await asyncio.sleep(PROBE_SECONDS)
                continue
            self._waited = tries > 1
            self.resumed_at = time.monotonic()
            if self._waited:
                log.warning("database back after %.1f s: resuming", self.resumed_at - since)
            self._up.set()
            return

    async def settle(self) -> None:
        """Before claiming new work: let SETTLE_SECONDS pass since the last outage ended."""
        remaining = self.resumed_at + SETTLE_SECONDS - time.monotonic()
        if remaining > 0 and self._waited:
            await asyncio.sleep(remaining)

    async def run(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run `step` (one transaction), again after each outage until it goes through."""
        quick = 0
        while True:
            try:
                return await step()
            except DATABASE_ERRORS as exc:
                if not await self.wait(exc):
                    quick += 1
                    if quick >= MAX_FAILURES_WHILE_UP:
                        raise

    def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
