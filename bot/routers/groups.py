"""The bot in group chats (groups, supergroups, forum topics), and the deep links that bring a
group's member to the private chat.

In a group the bot answers only what is addressed to it (bot.guards drops the rest before
anything is stored): a photo whose caption mentions it or is /predict, or a reply to a photo
with /predict or a mention; the answer is a reply in the same topic. What is personal
(/contribute, consent, /mine, /privacy, /forget, /language, the admin commands) answers with a
button opening the private chat at that dialog (`https://t.me/<bot>?start=<payload>`), so a
group never sees a consent question or anyone's photos. Group photos are never contributions:
this router takes every group message before the dialog routers see it.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.filters import Command, CommandObject, CommandStart, or_f
from aiogram.types import (
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.commands import ADMIN_COMMANDS
from bot.filters import GROUP_CHATS, MentionsBot
from bot.routers import admin, common, contribute, mine, privacy
from bot.services.predict import SkippedPhotos, queue_photo
from db.blobs import BlobStore
from db.queue import recent_in_chat
from emobot.i18n import t
from emobot.settings import Settings

log = logging.getLogger(__name__)

# Commands whose dialog is personal: in a group they answer with a link to the private chat.
PRIVATE_ONLY = ("contribute", "mine", "privacy", "forget", "language")
# Admin commands a link can start as they are; the others take arguments: their link opens the
# admin's command list.
ADMIN_LINKED = ("stats", "models")
RATE_WINDOW_S = 60.0

# `/start <payload>` in the private chat → the handler it starts.
DEEP_LINKS: dict[str, Any] = {
    "contribute": contribute.contribute,
    "mine": mine.mine,
    "privacy": privacy.privacy,
    "forget": privacy.forget_command,
    "language": common.language,
}
ADMIN_LINKS: dict[str, Any] = {"stats": admin.stats, "models": admin.models}


def deep_link(username: str, payload: str) -> str:
    return f"https://t.me/{username}?start={payload}"


def private_button(lang: str, username: str, payload: str) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(
        text=t(lang, "group.open_private"), url=deep_link(username, payload)
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


class GroupLimit:
    """At most `per_minute` photos queued per group chat, counted in PostgreSQL (every replica
    sees the same count); over it, one notice per chat and minute (per process), so that the
    notices do not flood the group in turn. A chat's photos are checked and queued one at a
    time in a process (`lock`), so that members sending at once do not all pass the count
    before any of them is queued; replicas may each let one through past it."""

    def __init__(self) -> None:
        self._noticed: dict[int, float] = {}
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, chat_id: int) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock

    async def over(self, session: AsyncSession, chat_id: int, per_minute: int) -> bool:
        return await recent_in_chat(session, chat_id, RATE_WINDOW_S) >= per_minute

    def should_notice(self, chat_id: int) -> bool:
        now = time.monotonic()
        self._noticed = {c: at for c, at in self._noticed.items() if now - at < RATE_WINDOW_S}
        if chat_id in self._noticed:
            return False
        self._noticed[chat_id] = now
        return True


def make_router() -> Router:
    router = Router(name="groups")
    limit = GroupLimit()

    async def predict(
        message: Message,
        session: AsyncSession,
        blobs: BlobStore,
        bot: Bot,
        settings: Settings,
        skipped: SkippedPhotos,
        lang: str,
    ) -> None:
        """A photo captioned with a mention or /predict, or a reply to a photo asking for it."""
        async with limit.lock(message.chat.id):
            await queue_in_group(message, session, blobs, bot, settings, skipped, lang)

    async def queue_in_group(
        message: Message,
        session: AsyncSession,
        blobs: BlobStore,
        bot: Bot,
        settings: Settings,
        skipped: SkippedPhotos,
        lang: str,
    ) -> None:
        photo = message if (message.photo or message.document) else message.reply_to_message
        assert photo is not None and message.from_user is not None
        if await limit.over(session, message.chat.id, settings.group_photos_per_minute):
            metrics.refused("group_rate")
            if limit.should_notice(message.chat.id):
                per_minute = settings.group_photos_per_minute
                await message.reply(t(lang, "group.rate_limited", count=per_minute))
            return
        if await skipped.should_skip(session, message.from_user.id, settings.max_queued_per_user):
            skipped.skip(bot, message.from_user.id, message, lang, settings.max_queued_per_user)
            return
        # A refused photo raises Rejected: the errors router replies with the reason.
        await queue_photo(
            session,
            blobs,
            bot,
            message,
            settings.max_photo_bytes,
            settings.max_photo_pixels,
            lang,
            photo=photo,
        )

    async def private_only(message: Message, command: CommandObject, bot: Bot, lang: str) -> None:
        me = await bot.me()
        assert me.username is not None
        payload = command.command.lower()
        await message.reply(
            t(lang, "group.private_only", command=payload),
            reply_markup=private_button(lang, me.username, payload),
        )

    async def admin_only(
        message: Message, command: CommandObject, bot: Bot, lang: str, is_admin: bool
    ) -> None:
        if not is_admin:  # an admin command from anyone else is no command at all: quiet
            return
        me = await bot.me()
        assert me.username is not None
        name = command.command.lower()
        payload = name if name in ADMIN_LINKED else "admin"
        await message.reply(
            t(lang, "group.private_only", command=name),
            reply_markup=private_button(lang, me.username, payload),
        )

    async def group_help(message: Message, bot: Bot, lang: str) -> None:
        me = await bot.me()
        assert me.username is not None
        await message.reply(
            t(lang, "group.help", bot=me.username),
            reply_markup=private_button(lang, me.username, "help"),
        )

    async def ignore(message: Message) -> None:
        """Anything else said to the bot in a group: no dialog runs in groups."""

    groups = Router(name="groups.chats")
    groups.message.filter(F.chat.type.in_(GROUP_CHATS))
    wants = or_f(MentionsBot(), Command("predict"))
    photo = F.photo | F.document
    groups.message.register(predict, photo, wants)
    groups.message.register(predict, F.reply_to_message.photo | F.reply_to_message.document, wants)
    groups.message.register(private_only, Command(*PRIVATE_ONLY))
    groups.message.register(admin_only, Command(*ADMIN_COMMANDS))
    groups.message.register(group_help, or_f(Command("start", "help", "predict"), MentionsBot()))
    groups.message.register(ignore)
    router.include_router(groups)

    router.message.register(start_link, F.chat.type == "private", CommandStart(deep_link=True))
    router.my_chat_member.register(membership)
    return router


async def start_link(message: Message, command: CommandObject, **data: Any) -> None:
    """`/start <payload>` from a group's button: that dialog starts in the private chat; an
    unknown payload (or an admin's, for anyone else) is a plain /start."""
    payload = (command.args or "").strip().lower()
    is_admin = bool(data.get("is_admin"))
    target = DEEP_LINKS.get(payload) or (ADMIN_LINKS.get(payload) if is_admin else None)
    if target is None:
        target = common.help_ if payload in ("help", "admin") else common.start
    await CallableObject(target).call(message, command=command, **data)


async def membership(event: ChatMemberUpdated) -> None:
    """The bot added to or removed from a chat (blocked, unblocked in a private one): nothing
    to say and nothing to store; logged."""
    log.info(
        "chat %s (%s): the bot is now %s",
        event.chat.id,
        event.chat.type,
        event.new_chat_member.status,
    )
