"""Running a long-lived process (the worker, the trainer) until SIGTERM or Ctrl-C.

The storage, the Bot API client, signal handlers that ask the service to stop, and the
operations endpoint (emobot/operations.py) are set up here once for both.
"""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

from aiogram import Bot

from db.engine import Storage, open_storage, ping
from emobot.operations import Check, serve_operations
from emobot.settings import Settings
from emobot.telegram import make_bot, telegram_configured

log = logging.getLogger(__name__)


class Service(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None:
        """Finish the work in hand, then let `run` return (called from a signal handler)."""


@dataclass
class Serving:
    service: Service
    checks: dict[str, Check] = field(default_factory=dict)  # besides the database's
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = ()


# Builds the service over the open storage; what must be undone goes on the exit stack.
Build = Callable[[Storage, Bot | None, AsyncExitStack], Serving]


async def serve(settings: Settings, name: str, build: Build, *, needs_bot: bool) -> None:
    """Run the service `build` makes until it stops. Without a Bot API configured, a service
    that `needs_bot` does not start; another runs without one (and says so)."""
    bot = make_bot(settings) if needs_bot or telegram_configured(settings) else None
    if bot is None:
        log.warning("%s: BOT_TOKEN is not set: nothing is sent to any chat", name)
    async with AsyncExitStack() as stack:
        if bot is not None:
            stack.push_async_callback(bot.session.close)
        storage = await stack.enter_async_context(open_storage(settings))
        serving = build(storage, bot, stack)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, serving.service.stop)
        checks = {"database": lambda: ping(storage.engine), **serving.checks}
        async with serve_operations(settings.metrics_port, checks, serving.before_scrape):
            log.info("%s: started", name)
            await serving.service.run()
            log.info("%s: stopped", name)
