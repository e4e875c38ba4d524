"""Answering a pressed button in its message: the one way handlers edit the bot's messages.

A button can be pressed twice (two quick taps both carry the message as it was before the
first edit), on a message that was deleted since, or on one too old to edit (Telegram then
gives an `InaccessibleMessage`, and forged callbacks can name anything). None of these is an
error for the person: a second identical edit changes nothing, and an outcome that cannot be
shown in place is sent as a new message, so that it is still read.
"""

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

# Telegram's descriptions (the Bot API's 400 answers to editMessage*).
NOT_MODIFIED = "message is not modified"
CANNOT_EDIT = (
    "message to edit not found",
    "message can't be edited",
    "there is no text in the message to edit",
    "MESSAGE_ID_INVALID",
)


async def edit(
    query: CallbackQuery, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Show `text` (and `reply_markup`, or no keyboard) in place of the pressed button's
    message; as a new message where that message cannot be edited."""
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=reply_markup)
            return
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in exc.message:
                return
            if not any(reason in exc.message for reason in CANNOT_EDIT):
                raise
    await send(query, text, reply_markup)


async def send(
    query: CallbackQuery, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Message:
    """A new message in the chat of the pressed button (its message may be inaccessible)."""
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    bot = query.bot
    if bot is None:  # only objects built outside a dispatcher have no bot
        raise RuntimeError("the callback query is not bound to a bot")
    return await bot.send_message(chat_id, text, reply_markup=reply_markup)


async def edit_message(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    """Replace the text of a message the bot sent earlier (a status that reports progress);
    sent anew when it is gone, as `edit` does."""
    try:
        await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
    except TelegramBadRequest as exc:
        if NOT_MODIFIED in exc.message:
            return
        if not any(reason in exc.message for reason in CANNOT_EDIT):
            raise
        await bot.send_message(chat_id, text)
