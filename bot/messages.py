"""Editing the bot's messages when a button is pressed twice."""

from typing import Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InaccessibleMessage, Message


async def edit_text(
    message: Message | InaccessibleMessage | None, text: str, **kwargs: Any
) -> None:
    """Edit the message a button belongs to. Two quick taps both carry the message as it was
    before the first edit; the second edit changes nothing, which Telegram answers with
    "message is not modified": that is no error here."""
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, **kwargs)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise
