"""Middlewares: metrics, retrying updates through a database outage, bounded concurrency, a
database session and user row per update, duplicate updates, throttling, committing before
each request to Telegram, and honouring Telegram's flood control when sending."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import ReplyParameters, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.services.photos import Rejected
from db.current import current_session, update_session
from db.outage import is_unreachable
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


@dataclass
class Delivery:
    """One update's handling across `OutageRetry`'s attempts."""

    attempt: int = 0
    taken: bool = False  # its id is committed to seen_updates: a retry must not skip it
    # The commit of its id was sent when the connection failed: it may have been applied, so
    # a retry that finds the id taken takes it for its own (rather than lose the update).
    maybe_taken: bool = False


class OutageRetry(BaseMiddleware):
    """Keeps an update while PostgreSQL cannot be reached: its handling is tried again with
    backoff for up to `give_up_after` seconds, then the person is asked to send it again (a
    reply to their message, in their Telegram language: their row cannot be read).

    In polling the getUpdates offset has moved past the update and in webhook mode aiogram
    has answered Telegram already, so this process is the only one that still has it. Between
    attempts the update holds no handler slot, no session and no dialog lock, so other
    updates flow as far as the database lets them. Other errors go on to the errors router."""

    def __init__(
        self, give_up_after: float, first_wait: float = 0.5, longest_wait: float = 5.0
    ) -> None:
        self.give_up_after = give_up_after
        self.first_wait = first_wait
        # Short enough that the update is answered within seconds of the database's return.
        self.longest_wait = longest_wait

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        wait = self.first_wait
        delivery = data["delivery"] = Delivery()
        while True:
            delivery.attempt += 1
            try:
                # The same dict each time: the errors router reads what the inner middlewares
                # put there (the user's language), and each attempt sets it afresh.
                return await handler(event, data)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                left = deadline - loop.time()
                if left <= 0:
                    log.error(
                        "database unreachable for %.0f s: update %s given up (%s)",
                        self.give_up_after,
                        event.update_id,
                        exc.__class__.__name__,
                    )
                    break
                log.warning(
                    "database unreachable (%s): update %s tried again in %.1f s",
                    exc.__class__.__name__,
                    event.update_id,
                    min(wait, left),
                )
                await asyncio.sleep(min(wait, left))
                wait = min(wait * 2, self.longest_wait)
        metrics.refused("db_unavailable")
        await self._ask_again(event, data)
        return None

    @staticmethod
    async def _ask_again(event: Update, data: dict[str, Any]) -> None:
        sender: User | None = data.get("event_from_user")
        bot: Bot = data["bot"]
        lang = pick_language(None, sender.language_code if sender else None)
        text = t(lang, "unavailable")
        try:
            if event.message is not None:
                reply = ReplyParameters(
                    message_id=event.message.message_id, allow_sending_without_reply=True
                )
                await bot.send_message(event.message.chat.id, text, reply_parameters=reply)
            elif event.callback_query is not None:
                await bot.send_message(event.callback_query.from_user.id, text)
        except TelegramAPIError:
            log.exception("could not ask for update %s again", event.update_id)


class Concurrency(BaseMiddleware):
    """At most `limit` updates handled at once. Below the pool size, so that the handlers (one
    connection each at most) never take the whole pool and aiogram's dialog-state reads, made
    before this, always find a connection. Runs inside the per-user lock, so that photos of one
    album waiting for their turn hold no slot."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self._slots:
            return await handler(event, data)


class DuplicateUpdates(BaseMiddleware):
    """Skips an update that this or another bot process has taken (Telegram may deliver one
    twice, and webhook replicas each get a delivery). The id is committed up front with the
    user's row, so no lock is held while the handler works; an update whose handler fails is
    not handled again on a redelivery (outages are retried in this process: `OutageRetry`)."""

    # Telegram keeps an update for redelivery for 24 hours; every PRUNE_EVERY-th id (they
    # are sequential) clears ids older than KEEP.
    KEEP = timedelta(days=2)
    PRUNE_EVERY = 1000

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        session: AsyncSession = data["session"]
        delivery: Delivery = data.get("delivery") or Delivery()
        if not delivery.taken:
            if not await take_update(session, event.update_id) and not delivery.maybe_taken:
                await session.commit()
                log.info("duplicate update %s ignored", event.update_id)
                metrics.DUPLICATES.inc()
                return None
            if event.update_id % self.PRUNE_EVERY == 0:
                await forget_updates(session, self.KEEP)
            delivery.maybe_taken = True
            await session.commit()
            delivery.taken = True
        return await handler(event, data)


class Database(BaseMiddleware):
    """A session per update, the user's row upserted, and `lang` and `is_admin` for the
    handlers. The session is the update's (db.current): the FSM storage works in it, and what
    the update wrote is committed before each request to Telegram (`CommitBeforeSending`) and
    when the handler returns (or refuses with `Rejected`). A connection is held only while a
    transaction is open, so services end theirs before slow work (detection, uploads)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], admin_ids: frozenset[int]):
        self.sessions = sessions
        self.admin_ids = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        CommitBeforeSending.install(data["bot"])
        sender: User | None = data.get("event_from_user")
        async with self.sessions() as session:
            with update_session(session):
                data["session"] = session
                data["lang"] = DEFAULT_LANGUAGE
                data["is_admin"] = False
                # Who added or removed the bot in a chat has not spoken to it: not stored.
                membership = isinstance(event, Update) and event.my_chat_member is not None
                if sender is not None and not membership:
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
                    # A refusal is an answer (the errors router gives it), not a failure:
                    # what the update wrote stands.
                    await session.commit()
                    raise
                await session.commit()
                return result


class CommitBeforeSending(BaseRequestMiddleware):
    """Commits the current update's transaction before any request to Telegram: a reply is
    sent once what it reports is stored, and no transaction (nor its connection and row locks)
    stays open while Telegram answers or a file downloads (`getFile` comes first)."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        session = current_session()
        if session is not None and session.in_transaction():
            await session.commit()
        return await make_request(bot, method)

    @classmethod
    def install(cls, bot: Bot) -> None:
        """Register on `bot` once (the Database middleware does, on the bot it serves)."""
        if not any(isinstance(m, cls) for m in bot.session.middleware):
            bot.session.middleware(cls())


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
        delivery: Delivery | None = data.get("delivery")
        if delivery is not None and delivery.attempt > 1:  # counted on its first attempt
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
            # In a group the warning would be for everyone, and the sender's private chat
            # may not exist: dropped quietly there.
            private = event.message is None or event.message.chat.type == "private"
            if sender.id not in self._warned and private:
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
    """Waits as long as Telegram's flood control asks and sends again (a few times at most);
    a wait longer than `max_wait` is not waited: FLOOD_WAIT_MAX_SECONDS, the worker's rule."""

    def __init__(self, max_wait: float, attempts: int = 3) -> None:
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
