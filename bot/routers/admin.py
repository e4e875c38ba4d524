"""Admin commands; for anyone else they fall through to "unknown command"."""

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.filters import IsAdmin
from bot.services import admin
from bot.texts import t
from db.engine import Storage
from db.registry import UnknownModel
from emobot.settings import Settings
from ml.params import JobParams


async def stats(message: Message, session: AsyncSession, lang: str) -> None:
    await message.answer(await admin.stats_text(session, lang))


async def export(
    message: Message,
    command: CommandObject,
    bot: Bot,
    db_storage: Storage,
    settings: Settings,
    export_document_limit: int,
    lang: str,
) -> None:
    try:
        raw_ids = admin.raw_ids_asked(command.args or "")
    except ValueError:
        await message.answer(t(lang, "admin.export.usage", args=command.args))
        return
    await admin.export_to_chat(
        bot, db_storage.sessions, db_storage.blobs, message.chat.id, lang,
        workdir=settings.data_dir / "exports", document_limit=export_document_limit,
        raw_ids=raw_ids, pseudonym_key=settings.pseudonym_key,
    )  # fmt: skip


async def retrain(
    message: Message, command: CommandObject, session: AsyncSession, bot: Bot, lang: str
) -> None:
    assert message.from_user is not None
    try:
        # Promoted only if it beats the active model on the same test split, unless told not to.
        params = JobParams.from_text(command.args or "", promote=True)
    except ValueError as exc:
        await message.answer(t(lang, "admin.retrain.usage", error=str(exc)))
        return
    await admin.retrain(session, bot, message.from_user.id, message.chat.id, lang, params)


async def models(message: Message, session: AsyncSession, lang: str) -> None:
    await message.answer(await admin.models_text(session, lang))


async def promote(
    message: Message, command: CommandObject, session: AsyncSession, lang: str
) -> None:
    argument = (command.args or "").strip().removeprefix("v")
    if not argument.isdigit():
        await message.answer(t(lang, "admin.promote.usage"))
        return
    try:
        model = await admin.promote_version(session, int(argument))
    except UnknownModel:
        await message.answer(t(lang, "admin.promote.unknown", version=argument))
        return
    await message.answer(t(lang, "admin.promote.done", version=model.version))


def make_router() -> Router:
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.message.register(stats, Command("stats"))
    router.message.register(export, Command("export"))
    router.message.register(retrain, Command("retrain"))
    router.message.register(models, Command("models"))
    router.message.register(promote, Command("promote"))
    return router
