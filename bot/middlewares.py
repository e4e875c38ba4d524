"""Middlewares: metrics, a database session and user row per update, duplicate updates,
throttling, and honouring Telegram's flood control when sending."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.services.photos import Rejected
from db.updates import forget_updates, take_update
from db.users import upsert_user, user_language
from emobot.i18n import DEFAULT_LANGUAGE, pick_language, t

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Metrics(BaseMiddleware):
    """Counts updates by type and times their handling (the outermost of our middlewares)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        kind = event.event_type
        metrics.UPDATES.labels(kind).inc()
        with metrics.UPDATE_SECONDS.labels(kind).time():
            return await handler(event, data)


class DuplicateUpdates(BaseMiddleware):
    """Skips an update that this or another bot process has taken (Telegram may deliver one
    twice, and webhook replicas each get a delivery). The id is recorded in the update's own
    transaction (after `Database`), so it counts as taken once what its handler wrote is
    committed with it; a handler that fails leaves it to the next delivery."""

    # Telegram keeps an update for redelivery for 24 hours; every PRUNE_EVERY-th id (they
    # are sequential) clears ids older than KEEP.
    KEEP = timedelta(days=2)
    PRUNE_EVERY = 1000

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        session: AsyncSession = data["session"]
        if not await take_update(session, event.update_id):
            log.info("duplicate update %s ignored", event.update_id)
            metrics.DUPLICATES.inc()
            return None
        if event.update_id % self.PRUNE_EVERY == 0:
            await forget_updates(session, self.KEEP)
        return await handler(event, data)


class Database(BaseMiddleware):
    """A session per update, the user's row upserted, and `lang` and `is_admin` for the
    handlers. The session is committed here when the handler returns (or refuses with
    `Rejected`): services commit only where a NOTIFY must go out before the reply."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], admin_ids: frozenset[int]):
        self.sessions = sessions
        self.admin_ids = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: User | None = data.get("event_from_user")
        async with self.sessions() as session:
            data["session"] = session
            data["lang"] = DEFAULT_LANGUAGE
            data["is_admin"] = False
            if sender is not None:
                user = await upsert_user(
                    session,
                    sender.id,
                    username=sender.username,
                    first_name=sender.first_name,
                    telegram_language=sender.language_code,
                )
                data["user"] = user
                data["lang"] = user_language(user)
                data["is_admin"] = sender.id in self.admin_ids
            try:
                result = await handler(event, data)
            except Rejected:
                # A refusal is an answer (the errors router gives it), not a failure: what the
                # update wrote stands, the user row and the update id with it.
                await session.commit()
                raise
            await session.commit()
            return result


class Throttling(BaseMiddleware):
    """At most `limit` updates per user in `window` seconds; the photos of one album count as
    one. Over the limit, updates are dropped and the user is warned once per flood.

    Runs before `Database`: a dropped update opens no session and writes nothing. Users
    with no update in the last window are forgotten, so memory follows the users active now,
    not everyone ever seen.

    Photos and files are never dropped here: each gets an answer or is named in a refusal
    (prediction requests are capped per user instead, see bot.services.predict)."""

    def __init__(
        self, limit: int = 15, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._albums: dict[int, str] = {}  # the last album seen per user
        self._warned: set[int] = set()
        self._swept = clock()

    def _forget_idle(self, now: float) -> None:
        """Drop users whose last update left the window (once per window: cheap)."""
        if now - self._swept < self.window:
            return
        self._swept = now
        idle = [u for u, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for user_id in idle:
            del self._hits[user_id]
            self._albums.pop(user_id, None)
            self._warned.discard(user_id)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        sender: User | None = data.get("event_from_user")
        if sender is None:
            return await handler(event, data)
        if event.message is not None and (event.message.photo or event.message.document):
            return await handler(event, data)
        album = event.message.media_group_id if event.message else None
        if album is not None and self._albums.get(sender.id) == album:
            return await handler(event, data)
        now = self.clock()
        self._forget_idle(now)
        hits = self._hits.setdefault(sender.id, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            metrics.refused("throttled")
            if sender.id not in self._warned:
                self._warned.add(sender.id)
                bot: Bot = data["bot"]
                # No database yet (that is the point): the client's language, not /language's.
                lang = pick_language(None, sender.language_code)
                await bot.send_message(sender.id, t(lang, "throttled"))
            return None
        self._warned.discard(sender.id)
        hits.append(now)
        if album is not None:
            self._albums[sender.id] = album
        return await handler(event, data)


class RetryAfter(BaseRequestMiddleware):
    """Waits as long as Telegram's flood control asks and sends again (a few times at most)."""

    def __init__(self, attempts: int = 3, max_wait: float = 60.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                log.warning(
                    "flood control on %s: waiting %ss", method.__api_method__, exc.retry_after
                )
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable: the last attempt returns or raises")
