"""The outermost middleware: updates the bot has nothing to do with are dropped quietly,
before anything counts, stores or answers them.

- An update of a type this aiogram does not know (Telegram adds types; a forged request):
  aiogram would raise on it in every middleware that asks its type.
- Anything from a bot account: bots cannot write to bots in Telegram, so it is forged, and
  answering bots invites loops.
- A user or chat id outside PostgreSQL's bigint (Telegram's ids fit in 52 bits): forged, and
  it would fail on the first insert.
- A channel post: the bot has nothing to say in channels.
- A group message not addressed to the bot (no command, no mention): its sender never spoke
  to the bot, so nothing about them is stored (their user row included).
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Chat, TelegramObject, Update, User
from aiogram.types.update import UpdateTypeLookupError

from bot import metrics
from bot.filters import GROUP_CHATS, addressed_to_bot

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

BIGINT = range(-(2**63), 2**63)


class Screen(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        reason = self.reason_to_ignore(event, data)
        if reason is None and not await self._addressed(event, data["bot"]):
            reason = "group_chatter"
        if reason is not None:
            log.info("update %s ignored: %s", event.update_id, reason)
            metrics.refused(reason)
            return None
        return await handler(event, data)

    @staticmethod
    def reason_to_ignore(event: Update, data: dict[str, Any]) -> str | None:
        try:
            event.event_type  # noqa: B018 - raises for a type aiogram does not know
        except UpdateTypeLookupError:
            return "unknown_update"
        sender: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if sender is not None and sender.is_bot:
            return "from_bot"
        if (sender is not None and sender.id not in BIGINT) or (
            chat is not None and chat.id not in BIGINT
        ):
            return "id_out_of_range"
        if event.channel_post is not None or event.edited_channel_post is not None:
            return "channel_post"
        return None

    @staticmethod
    async def _addressed(event: Update, bot: Bot) -> bool:
        message = event.message
        if message is None or message.chat.type not in GROUP_CHATS:
            return True
        return addressed_to_bot(message, await bot.me())
