"""How every process (bot, worker, trainer) gets its Bot API client, and the token rule.

BOT_TOKEN talks to Telegram (or to TELEGRAM_API_URL when that is set too). Without it,
TELEGRAM_API_URL must name a playground Bot API (`emobot run`, the tests), which takes any
token: PLAYGROUND_TOKEN then. With neither, there is nobody to talk to.

The bot gets aiogram's `Bot` (`make_bot`); the worker and the trainer, which only send, get the
small client of runtime/botclient.py (`make_client`) and never import aiogram (about 150 MB).
"""

from typing import TYPE_CHECKING

from emobot.settings import Settings
from runtime.botclient import TELEGRAM_API, BotClient, BotSession

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.client.session.middlewares.base import BaseRequestMiddleware

PLAYGROUND_TOKEN = "1:playground"


class ConfigurationError(SystemExit):
    """The settings name no Bot API to talk to; the message says which to set."""


def telegram_configured(settings: Settings) -> bool:
    return settings.bot_token is not None or settings.telegram_api_url is not None


def _token(settings: Settings) -> str:
    if not telegram_configured(settings):
        raise ConfigurationError("set BOT_TOKEN (Telegram) or TELEGRAM_API_URL (a playground)")
    return settings.bot_token.get_secret_value() if settings.bot_token else PLAYGROUND_TOKEN


def make_client(settings: Settings) -> BotClient:
    """The worker's and the trainer's Bot API client."""
    token = _token(settings)
    return BotClient(token, BotSession(settings.telegram_api_url or TELEGRAM_API))


def make_bot(settings: Settings, *middlewares: "BaseRequestMiddleware") -> "Bot":
    """The bot's aiogram client, with `middlewares` on every request it sends."""
    # Imported here: this module is the worker's and the trainer's too.
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    token = _token(settings)
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
        if settings.telegram_api_url
        else AiohttpSession()
    )
    for middleware in middlewares:
        session.middleware(middleware)
    return Bot(token, session=session)
