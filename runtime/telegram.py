"""The one way every process (bot, worker, trainer) gets its Bot API client, and the token rule.

BOT_TOKEN talks to Telegram (or to TELEGRAM_API_URL when that is set too). Without it,
TELEGRAM_API_URL must name a playground Bot API (`emobot run`, the tests), which takes any
token: PLAYGROUND_TOKEN then. With neither, there is nobody to talk to.
"""

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer

from emobot.settings import Settings

PLAYGROUND_TOKEN = "1:playground"


class ConfigurationError(SystemExit):
    """The settings name no Bot API to talk to; the message says which to set."""


def telegram_configured(settings: Settings) -> bool:
    return settings.bot_token is not None or settings.telegram_api_url is not None


def make_bot(settings: Settings, *middlewares: BaseRequestMiddleware) -> Bot:
    """The Bot API client, with `middlewares` on every request it sends."""
    if not telegram_configured(settings):
        raise ConfigurationError("set BOT_TOKEN (Telegram) or TELEGRAM_API_URL (a playground)")
    token = settings.bot_token.get_secret_value() if settings.bot_token else PLAYGROUND_TOKEN
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
        if settings.telegram_api_url
        else AiohttpSession()
    )
    for middleware in middlewares:
        session.middleware(middleware)
    return Bot(token, session=session)
