"""Errors out of handlers. A refusal (`Rejected`: a photo that is too big, has no face, …)
is answered with its reason; any other exception is logged with its traceback and the user
gets a short apology."""

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot import metrics
from bot.services.photos import Rejected
from emobot.i18n import DEFAULT_LANGUAGE, t

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot, lang: str = DEFAULT_LANGUAGE) -> None:
    update = event.update
    log.error("update %s failed", update.update_id, exc_info=event.exception)
    metrics.ERRORS.inc()
    chat_id = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None:
        chat_id = update.callback_query.from_user.id
    if chat_id is None:
        return
    try:
        if update.callback_query is not None:
            await bot.answer_callback_query(update.callback_query.id)
        await bot.send_message(chat_id, t(lang, "error"))
    except TelegramAPIError:
        log.exception("could not apologise in chat %s", chat_id)


async def on_rejected(event: ErrorEvent, lang: str = DEFAULT_LANGUAGE) -> None:
    rejected = event.exception
    assert isinstance(rejected, Rejected)
    metrics.refused(rejected.key)
    if event.update.message is not None:
        await event.update.message.reply(t(lang, rejected.key, **rejected.values))


def make_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_rejected, ExceptionTypeFilter(Rejected))
    router.errors.register(on_error)
    return router
