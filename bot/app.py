"""Building the Bot and the Dispatcher, and running them (long polling or webhook)."""

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
)

from bot.commands import ADMIN_COMMANDS, GROUP_COMMANDS, USER_COMMANDS
from bot.guards import Screen
from bot.middlewares import (
    Concurrency,
    Database,
    DuplicateUpdates,
    Metrics,
    OutageRetry,
    RetryAfter,
    Throttling,
)
from bot.routers import (
    admin,
    common,
    contribute,
    errors,
    feedback,
    groups,
    mine,
    predict,
    privacy,
)
from bot.services.predict import SkippedPhotos
from db.engine import Storage, make_sessionmaker
from db.fsm import PostgresStorage
from emobot.i18n import LANGUAGES, t
from emobot.settings import WEBHOOK_SECRET_MISSING, Settings
from runtime.serving import Serving, serve
from runtime.telegram import ConfigurationError, make_bot

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"


def build_bot(settings: Settings) -> Bot:
    """The bot's Bot API client: Telegram's flood control honoured on every request, up to
    the wait the worker's answers accept too."""
    return make_bot(settings, RetryAfter(settings.flood_wait_max_seconds))


def build_dispatcher(
    storage: Storage,
    settings: Settings,
    *,
    throttle_limit: int = 15,
    throttle_window: float = 10.0,
    extra_routers: Sequence[Router] = (),
) -> Dispatcher:
    """The Dispatcher with every feature; `extra_routers` go before the fallback router."""
    # The bot's sessions: PostgreSQL ends a statement or an idle transaction that runs too long.
    sessions = make_sessionmaker(
        storage.engine,
        statement_timeout_s=settings.db_statement_timeout_seconds,
        idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_seconds,
    )
    dispatcher = Dispatcher(
        storage=PostgresStorage(sessions),
        # One update at a time per user: the photos of an album join the batch one by one.
        events_isolation=SimpleEventIsolation(),
        # aiogram's FSM middleware (the per-user lock, then the state) is placed below, inside
        # the outage retry: a retried update takes neither the lock nor a handler slot while it
        # waits.
        disable_fsm=True,
        settings=settings,
        db_storage=storage,
        blobs=storage.blobs,
        skipped=SkippedPhotos(),
    )
    # In this order: updates the bot has nothing to do with are dropped before anything (the
    # metrics ask every update its type); an update is counted once however often it is
    # retried; it waits for its user's lock, and a throttled one is dropped there (its warning
    # after the answers before it) before it opens a session; it waits for a handler slot
    # before it takes a pooled connection (one at most, its session's; the FSM storage shares
    # it).
    dispatcher.update.outer_middleware(Screen())
    dispatcher.update.outer_middleware(Metrics())
    dispatcher.update.outer_middleware(OutageRetry(settings.db_outage_retry_seconds))
    dispatcher.update.outer_middleware(dispatcher.fsm)
    dispatcher.update.outer_middleware(Throttling(throttle_limit, throttle_window))
    dispatcher.update.outer_middleware(Concurrency(settings.handler_concurrency))
    dispatcher.update.outer_middleware(Database(sessions, settings.admin_ids))
    dispatcher.update.outer_middleware(DuplicateUpdates())
    # Routers are built afresh: a router belongs to one dispatcher, and a process (or a test)
    # may build another after a restart.
    dispatcher.include_routers(
        errors.make_router(),
        # Before every other: group messages go no further, and /start with a deep link's
        # payload starts its dialog.
        groups.make_router(),
        feedback.make_router(),
        common.make_router(),
        admin.make_router(),
        contribute.make_router(),
        mine.make_router(),
        privacy.make_router(),
        predict.make_router(),
        *extra_routers,
        common.make_fallback_router(),
    )
    dispatcher.startup.register(set_commands)
    return dispatcher


def _commands(lang: str, names: tuple[str, ...]) -> list[BotCommand]:
    return [BotCommand(command=name, description=t(lang, f"cmd.{name}")) for name in names]


async def set_commands(bot: Bot, settings: Settings) -> None:
    """Menus per language and scope: private chats (the default scope, which groups do not
    use once they have their own) get every user command, group chats what works there;
    admins get theirs with the admin commands added."""
    for lang in LANGUAGES:
        # Russian is the default menu, the others are shown to clients in that language.
        code = None if lang == LANGUAGES[0] else lang
        await bot.set_my_commands(
            _commands(lang, USER_COMMANDS), scope=BotCommandScopeDefault(), language_code=code
        )
        await bot.set_my_commands(
            _commands(lang, GROUP_COMMANDS),
            scope=BotCommandScopeAllGroupChats(),
            language_code=code,
        )
        for admin_id in sorted(settings.admin_ids):
            try:
                await bot.set_my_commands(
                    _commands(lang, USER_COMMANDS + ADMIN_COMMANDS),
                    scope=BotCommandScopeChat(chat_id=admin_id),
                    language_code=code,
                )
            except TelegramBadRequest as exc:
                # "chat not found": an admin who never opened the bot has no chat with it
                # yet. Their menu waits for the next start; the bot must start regardless.
                log.warning("no admin menu for %s: %s", admin_id, exc.message)


class BotService:
    """The Dispatcher fed by long polling, or by a webhook server when WEBHOOK_URL is set; run
    by runtime.serving.serve like the worker and the trainer."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, settings: Settings):
        self.bot = bot
        self.dispatcher = dispatcher
        self.settings = settings
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Take no new update; `run` returns once those in hand are answered."""
        self._stopping.set()

    async def run(self) -> None:
        if self.settings.webhook_url:
            await _run_webhook(self.bot, self.dispatcher, self.settings, self._stopping)
        else:
            await _run_polling(self.bot, self.dispatcher, self.settings, self._stopping)


async def run_bot(settings: Settings) -> None:
    """Long polling, or a webhook server when WEBHOOK_URL is set, until SIGTERM or Ctrl-C."""
    if settings.webhook_url and settings.webhook_secret is None:
        raise ConfigurationError(WEBHOOK_SECRET_MISSING)

    def build(storage: Storage, bot: Bot | None, _: AsyncExitStack) -> Serving:
        assert bot is not None  # needs_bot
        dispatcher = build_dispatcher(storage, settings)
        return Serving(BotService(bot, dispatcher, settings), {"bot_api": bot.get_me})

    await serve(settings, "bot", build, needs_bot=True, bot_factory=build_bot)


async def _run_polling(
    bot: Bot, dispatcher: Dispatcher, settings: Settings, stopping: asyncio.Event
) -> None:
    await bot.delete_webhook()
    # Our own signal handling (serve): aiogram's would stop polling and close the session
    # without waiting for the handlers it started, whose replies would then be lost.
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
    )
    stopped = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({polling, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await dispatcher.stop_polling()
        await polling
    finally:
        stopped.cancel()
    await _finish_in_flight(dispatcher, settings.shutdown_grace_seconds)


async def _finish_in_flight(dispatcher: Dispatcher, grace: float) -> None:
    """Let the updates polling handed to handlers finish, for up to `grace` seconds. One cut
    short is rolled back with its seen_updates row; Telegram delivers it again unless a later
    getUpdates confirmed it already."""
    # aiogram keeps the task of each update it handles here and does not wait for them.
    tasks = set(dispatcher._handle_update_tasks)
    if not tasks:
        return
    log.info("finishing %d updates in hand", len(tasks))
    _, pending = await asyncio.wait(tasks, timeout=grace)
    if pending:
        log.warning("%d updates not finished in %.0f s: cancelled", len(pending), grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _run_webhook(
    bot: Bot, dispatcher: Dispatcher, settings: Settings, stopping: asyncio.Event
) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler
    from aiohttp import web

    if settings.webhook_secret is None:  # settings made in code skip the settings' validation
        raise ConfigurationError(WEBHOOK_SECRET_MISSING)
    secret = settings.webhook_secret.get_secret_value()
    # Telegram gets its answer once the update was handled: an error status (a crash, a process
    # going away) makes it deliver the update again, to this replica or another.
    handler = SimpleRequestHandler(dispatcher, bot, secret_token=secret, handle_in_background=False)
    app = web.Application()
    # Not handler.register(): it closes the bot's session as the server shuts down, before the
    # updates in hand are answered. The session is closed by serve() after them.
    app.router.add_post(WEBHOOK_PATH, handler.handle)
    # On shutdown the server stops listening, then waits this long for requests in hand.
    runner = web.AppRunner(app, shutdown_timeout=settings.shutdown_grace_seconds)
    workflow = {"dispatcher": dispatcher, "bots": (bot,), **dispatcher.workflow_data}
    url = settings.webhook_url.rstrip("/") + WEBHOOK_PATH if settings.webhook_url else ""
    await dispatcher.emit_startup(bot=bot, **workflow)
    try:
        await runner.setup()
        try:
            # Listen before registering: Telegram starts posting as soon as the webhook is set.
            await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
            await bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=dispatcher.resolve_used_update_types(),
            )
            log.info(
                "webhook at %s, listening on %s:%s",
                url,
                settings.webhook_host,
                settings.webhook_port,
            )
            await stopping.wait()
            log.info("webhook: taking no new updates, finishing those in hand")
        finally:
            await runner.cleanup()
    finally:
        await dispatcher.emit_shutdown(bot=bot, **workflow)
