"""Filters shared by routers."""

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import Message, TelegramObject, User

GROUP_CHATS = frozenset({"group", "supergroup"})


class IsAdmin(Filter):
    """The sender is in ADMIN_IDS (`is_admin` is set by the Database middleware)."""

    async def __call__(self, event: TelegramObject, is_admin: bool = False) -> bool:
        return is_admin


def mentions(message: Message, me: User) -> bool:
    """The text or caption names the bot: an @username mention, or a mention of a user
    without a username that is the bot."""
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or []
    name = f"@{me.username}".lower() if me.username else None
    for entity in entities:
        if entity.type == "mention" and name is not None:
            if entity.extract_from(text).lower() == name:
                return True
        elif entity.type == "text_mention" and entity.user is not None and entity.user.id == me.id:
            return True
    return False


def commands_other_bot(message: Message, me: User) -> bool:
    """A command addressed to another bot (`/start@otherbot`)."""
    text = message.text or message.caption or ""
    if not text.startswith("/"):
        return False
    _, _, target = text.split(maxsplit=1)[0].partition("@")
    return bool(target) and target.lower() != (me.username or "").lower()


def addressed_to_bot(message: Message, me: User) -> bool:
    """In a group: a command (not another bot's) or a mention of the bot. Anything else a
    group says is none of the bot's business (Telegram's privacy mode holds most of it back;
    an admin bot, or one with privacy mode off, gets everything)."""
    if commands_other_bot(message, me):
        return False
    text = message.text or message.caption or ""
    return text.startswith("/") or mentions(message, me)


class MentionsBot(Filter):
    async def __call__(self, message: Message, bot: Bot) -> bool:
        return mentions(message, await bot.me())
