"""Building the Bot and the Dispatcher, and running them (long polling or webhook)."""

import asyncio
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.commands import ADMIN_COMMANDS, USER_COMMANDS
from bot.guards import Screen
from bot.middlewares import Database, DuplicateUpdates, Metrics, RetryAfter, Throttling
from bot.routers import admin, common, contribute, errors, mine, predict, privacy
from bot.services.predict import SkippedPhotos
from db.engine import Storage, open_storage, ping
from db.fsm import PostgresStorage
from emobot.i18n import LANGUAGES, t
from emobot.operations import serve_operations
from emobot.settings import Settings
from emobot.telegram import make_bot

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"


def build_bot(settings: Settings) -> Bot:
    """The bot's Bot API client: Telegram's flood control honoured on every request."""
    return make_bot(settings, RetryAfter())


def build_dispatcher(
    storage: Storage,
    settings: Settings,
    *,
    throttle_limit: int = 15,
    throttle_window: float = 10.0,
    extra_routers: Sequence[Router] = (),
) -> Dispatcher:
    """The Dispatcher with every feature; `extra_routers` go before the fallback router."""
    dispatcher = Dispatcher(
        storage=PostgresStorage(storage.sessions),
        # One update at a time per user: the photos of an album join the batch one by one.
        events_isolation=SimpleEventIsolation(),
        settings=settings,
        db_storage=storage,
        blobs=storage.blobs,
        skipped=SkippedPhotos(),
    )
    # In this order: updates the bot has nothing to do with are dropped before anything (the
    # metrics ask every update its type), a throttled update before it opens a session.
    dispatcher.update.outer_middleware(Screen())
    dispatcher.update.outer_middleware(Metrics())
    dispatcher.update.outer_middleware(Throttling(throttle_limit, throttle_window))
    dispatcher.update.outer_middleware(Database(storage.sessions, settings.admin_ids))
    dispatcher.update.outer_middleware(DuplicateUpdates())
    # Routers are built afresh: a router belongs to one dispatcher, and a process (or a test)
    # may build another after a restart.
    dispatcher.include_routers(
        errors.make_router(),
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
    """Menus per language; admins get theirs with the admin commands added."""
    for lang in LANGUAGES:
        # Russian is the default menu, the others are shown to clients in that language.
        code = None if lang == LANGUAGES[0] else lang
        await bot.set_my_commands(
            _commands(lang, USER_COMMANDS), scope=BotCommandScopeDefault(), language_code=code
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


async def run_bot(settings: Settings) -> None:
    """Long polling, or a webhook server when WEBHOOK_URL is set."""
    async with open_storage(settings) as storage:
        bot = build_bot(settings)
        dispatcher = build_dispatcher(storage, settings)
        checks = {"database": lambda: ping(storage.engine), "bot_api": bot.get_me}
        try:
            async with serve_operations(settings.metrics_port, checks):
                if settings.webhook_url:
                    await _run_webhook(bot, dispatcher, settings)
                else:
                    await bot.delete_webhook()
                    await dispatcher.start_polling(bot)
        finally:
            await bot.session.close()


async def _run_webhook(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=secret).register(app, path=WEBHOOK_PATH)
    setup_application(app, dispatcher, bot=bot)
    url = settings.webhook_url.rstrip("/") + WEBHOOK_PATH if settings.webhook_url else ""
    runner = web.AppRunner(app)
    await runner.setup()
    # Listen before registering: Telegram starts posting as soon as the webhook is set.
    await web.TCPSite(runner, "0.0.0.0", settings.webhook_port).start()
    await bot.set_webhook(url, secret_token=secret)
    log.info("webhook at %s, listening on port %s", url, settings.webhook_port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
