"""Running a long-lived process (the bot, the worker, the trainer) until SIGTERM or Ctrl-C.

The storage, the Bot API client, signal handlers that ask the service to stop, and the
operations endpoint (runtime/operations.py) are set up here once for all three.

Stopping is the same everywhere: the first SIGTERM or SIGINT calls the service's `stop()`, which
stops taking new work and lets `run()` return once the work in hand is done (or handed back)
within SHUTDOWN_GRACE_SECONDS. Should `run()` still be busy a little after that, it is cancelled:
whatever it held is claimed again by the next process (worker leases, the trainer's requeue, an
unconfirmed Telegram update). Then the sessions close and the process exits 0 — below
Kubernetes' 30 s, so a rollout never has to kill it.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from db.engine import Storage, open_storage, ping
from emobot.settings import CANCEL_MARGIN_SECONDS, Settings
from runtime.operations import Check, serve_operations
from runtime.telegram import telegram_configured

log = logging.getLogger(__name__)

# What an unreachable or restarting PostgreSQL raises (TimeoutError is an OSError).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
# One connection attempt while waiting for the database: a black-holed address must not make a
# single try last asyncpg's 60 s.
PING_TIMEOUT_SECONDS = 10.0


def run_command(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run for a long-running command, except that it does not wait for the threads
    of the default executor at the end: one still busy in a service cut short after the grace
    period (the trainer's Keras fit) would keep the process alive for minutes after it stopped.
    The command then ends with exit_now, which does not wait for them either."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        try:
            # What asyncio.run does on its way out, but the executor's shutdown.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # shuts the executor down without waiting


class Service(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None:
        """Stop taking new work; let `run` return once the work in hand is done (called from
        a signal handler)."""


@dataclass
class Serving:
    service: Service
    checks: dict[str, Check] = field(default_factory=dict)  # besides the database's
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = ()


class _Session(Protocol):
    async def close(self) -> None: ...


class BotLike(Protocol):
    """A Bot API client: aiogram's `Bot` (the bot) or runtime.botclient's (the others)."""

    @property
    def session(self) -> _Session: ...


B = TypeVar("B", bound=BotLike)


# Builds the service over the open storage; what must be undone goes on the exit stack.
Build = Callable[[Storage, B | None, AsyncExitStack], Serving]


class Backoff:
    """Delays that double from `first` up to `limit`: retrying a database that is down."""

    def __init__(self, first: float = 0.5, limit: float = 15.0):
        self.first, self.limit = first, limit
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.limit)
        return delay

    def reset(self) -> None:
        self._next = self.first


async def wait_for_database(storage: Storage, name: str, stopping: asyncio.Event) -> bool:
    """Until PostgreSQL answers (True) or the process is asked to stop (False): a process that
    starts while the database restarts or fails over waits for it rather than exiting."""
    backoff = Backoff(first=0.5, limit=5.0)  # a ping is cheap: up soon after the database
    while True:
        try:
            await asyncio.wait_for(ping(storage.engine), PING_TIMEOUT_SECONDS)
            return True
        except DATABASE_ERRORS as exc:
            delay = backoff.next()
            log.warning(
                "%s: the database is unreachable (%r); trying again in %.1f s", name, exc, delay
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return False


async def serve(
    settings: Settings,
    name: str,
    build: Build[B],
    *,
    needs_bot: bool,
    bot_factory: Callable[[Settings], B],
) -> None:
    """Run the service `build` makes until it stops. Without a Bot API configured, a service
    that `needs_bot` does not start; another runs without one (and says so)."""
    bot = bot_factory(settings) if needs_bot or telegram_configured(settings) else None
    if bot is None:
        log.warning("%s: BOT_TOKEN is not set: nothing is sent to any chat", name)
    loop = asyncio.get_running_loop()
    grace = settings.shutdown_grace_seconds
    async with AsyncExitStack() as stack:
        if bot is not None:
            stack.push_async_callback(bot.session.close)
        storage = await stack.enter_async_context(open_storage(settings))
        serving = build(storage, bot, stack)
        stopping = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            if stopping.is_set():
                return
            log.info("%s: %s: stopping (up to %.0f s for the work in hand)", name, sig.name, grace)
            stopping.set()
            serving.service.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
            stack.callback(loop.remove_signal_handler, sig)
        checks = {"database": lambda: ping(storage.engine), **serving.checks}
        async with serve_operations(settings.metrics_port, checks, serving.before_scrape):
            if not await wait_for_database(storage, name, stopping):
                log.info("%s: stopped before the database answered", name)
                return
            log.info("%s: started", name)
            running = asyncio.create_task(serving.service.run())
            try:
                await _run_until_stopped(running, stopping, name, grace)
            finally:
                if not running.done():  # serve() itself was cancelled
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
            log.info("%s: stopped", name)


async def _run_until_stopped(
    running: asyncio.Task[None], stopping: asyncio.Event, name: str, grace: float
) -> None:
    stopped = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not running.done():
        try:
            await asyncio.wait_for(asyncio.shield(running), grace + CANCEL_MARGIN_SECONDS)
        except TimeoutError:
            waited = grace + CANCEL_MARGIN_SECONDS
            log.warning("%s: still busy after %.0f s: handing the rest back", name, waited)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            return
    running.result()  # a crash ends the process with its traceback (and a restart)
