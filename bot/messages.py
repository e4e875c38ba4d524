"""Answering a pressed button in its message: the one way handlers edit the bot's messages.

A button can be pressed twice (two quick taps both carry the message as it was before the
first edit), on a message that was deleted since, or on one too old to edit (Telegram then
gives an `InaccessibleMessage`, and forged callbacks can name anything). None of these is an
error for the person: a second identical edit changes nothing, and an outcome that cannot be
shown in place is sent as a new message, so that it is still read.
"""

import contextlib
from collections.abc import Awaitable

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)

# Telegram's descriptions (the Bot API's 400 answers to editMessage*).
NOT_MODIFIED = "message is not modified"
CANNOT_EDIT = (
    "message to edit not found",
    "message can't be edited",
    "there is no text in the message to edit",
    "there is no media in the message to edit",
    "MESSAGE_ID_INVALID",
)


async def _in_place(change: Awaitable[object]) -> bool:
    """Make an edit; True when it is done (a second tap's "not modified" counts as done), False
    when Telegram cannot edit that message (gone, too old, not ours): the caller sends anew."""
    try:
        await change
    except TelegramBadRequest as exc:
        if NOT_MODIFIED in exc.message:
            return True
        if not any(reason in exc.message for reason in CANNOT_EDIT):
            raise
        return False
    return True


async def edit(
    query: CallbackQuery, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Show `text` (and `reply_markup`, or no keyboard) in place of the pressed button's
    message; as a new message where that message cannot be edited."""
    message = query.message
    if isinstance(message, Message):
        if message.text is None and message.photo:  # a picture: its caption is the text
            change = message.edit_caption(caption=text, reply_markup=reply_markup)
        else:
            change = message.edit_text(text, reply_markup=reply_markup)
        if await _in_place(change):
            return
    await send(query, text, reply_markup)


async def edit_photo(
    query: CallbackQuery,
    photo: bytes,
    caption: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Show another picture (and caption) in the pressed button's message; as a new photo
    message where that message cannot be edited (gone, or a text message)."""
    message = query.message
    media = InputMediaPhoto(media=BufferedInputFile(photo, "photo.jpg"), caption=caption)
    if isinstance(message, Message) and await _in_place(
        message.edit_media(media, reply_markup=reply_markup)
    ):
        return
    await _bot(query).send_photo(
        _chat_id(query),
        BufferedInputFile(photo, "photo.jpg"),
        caption=caption,
        reply_markup=reply_markup,
    )


async def replace(query: CallbackQuery, text: str) -> None:
    """The pressed button's message replaced by a text message: deleted (where it still is)
    and `text` sent. For a picture that must not stay on show, such as deleted photos."""
    if isinstance(query.message, Message):
        # Already gone, or too old to delete: the new message says it all the same.
        with contextlib.suppress(TelegramBadRequest):
            await query.message.delete()
    await send(query, text)


def _chat_id(query: CallbackQuery) -> int:
    return query.message.chat.id if query.message is not None else query.from_user.id


def _bot(query: CallbackQuery) -> Bot:
    if query.bot is None:  # only objects built outside a dispatcher have no bot
        raise RuntimeError("the callback query is not bound to a bot")
    return query.bot


async def send(
    query: CallbackQuery, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Message:
    """A new message in the chat of the pressed button (its message may be inaccessible)."""
    return await _bot(query).send_message(_chat_id(query), text, reply_markup=reply_markup)


async def edit_message(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    """Replace the text of a message the bot sent earlier (a status that reports progress);
    sent anew when it is gone, as `edit` does."""
    if not await _in_place(bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)):
        await bot.send_message(chat_id, text)


async def drop_keyboard(bot: Bot, chat_id: int, message_id: int) -> None:
    """Take the buttons off a message whose buttons no longer apply (a batch's earlier "Done"),
    so that they do not look pressable; quiet when they are already off or the message gone."""
    await _in_place(bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id))


async def set_keyboard(query: CallbackQuery, markup: InlineKeyboardMarkup | None) -> None:
    """Change only the buttons of the pressed button's message (its text or picture stays);
    quiet when that message can no longer be edited."""
    if isinstance(query.message, Message):
        await _in_place(query.message.edit_reply_markup(reply_markup=markup))
