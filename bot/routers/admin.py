"""Admin commands; for anyone else they fall through to "unknown command"."""

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards
from bot.filters import IsAdmin
from bot.keyboards import PromoteCb
from bot.messages import edit
from bot.services import admin
from db.engine import Storage
from db.registry import UnknownModel, active_model
from emobot.i18n import t
from emobot.settings import Settings
from ml.better import verdict_text
from ml.job_params import JobParams, ParamError

# Versions are PostgreSQL integers: a bigger number is no version, not an overflow.
MAX_VERSION = 2**31 - 1


async def stats(message: Message, session: AsyncSession, settings: Settings, lang: str) -> None:
    await message.answer(await admin.stats_text(session, lang, settings))


async def export(
    message: Message,
    command: CommandObject,
    bot: Bot,
    db_storage: Storage,
    settings: Settings,
    lang: str,
) -> None:
    try:
        raw_ids = admin.raw_ids_asked(command.args or "")
    except ValueError:
        await message.answer(t(lang, "admin.export.usage", args=command.args))
        return
    admin.start_export(
        bot,
        message.chat.id,
        lang,
        sessions=db_storage.sessions,
        blobs=db_storage.blobs,
        workdir=settings.data_dir / "exports",
        document_limit=settings.export_document_bytes,
        raw_ids=raw_ids,
        pseudonym_key=settings.pseudonym_key,
    )


async def retrain(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    assert message.from_user is not None
    try:
        # Promoted only if it beats the active model on the same test split, unless told not to.
        params = JobParams.from_text(command.args or "", promote=True)
    except ParamError as exc:
        error = t(lang, f"admin.retrain.bad.{exc.code}", **exc.values)
        await message.answer(t(lang, "admin.retrain.usage", error=error))
        return
    await admin.retrain(session, bot, settings, message.from_user.id, message.chat.id, lang, params)


async def models(message: Message, session: AsyncSession, lang: str) -> None:
    await message.answer(await admin.models_text(session, lang))


def parse_version(argument: str | None) -> int | None:
    text = (argument or "").strip().lower().removeprefix("v")
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > 10
        or not 1 <= int(text) <= MAX_VERSION
    ):
        return None
    return int(text)


async def promote(
    message: Message, command: CommandObject, session: AsyncSession, lang: str
) -> None:
    """Promote at once when the model is no worse than the active one on the same test split;
    otherwise show both numbers and ask."""
    version = parse_version(command.args)
    if version is None:
        await message.answer(t(lang, "admin.promote.usage"))
        return
    try:
        plan = await admin.plan_promotion(session, version)
    except UnknownModel:
        await message.answer(t(lang, "admin.promote.unknown", version=version))
        return
    if plan.active is not None and plan.active.id == plan.candidate.id:
        await message.answer(t(lang, "admin.promote.already", version=version))
        return
    lines = []
    if plan.active is not None and plan.comparison is not None:
        old = plan.active.version
        lines.append(verdict_text(lang, plan.comparison, version, old))
        if plan.ask:
            key = (
                "admin.promote.worse"
                if plan.comparison.comparable
                else ("admin.promote.incomparable")
            )
            lines.append(t(lang, key, new=version, old=old))
            markup = keyboards.promote_confirm(lang, version, old)
            await message.answer("\n".join(lines), reply_markup=markup)
            return
    await admin.promote_version(session, version)
    lines.append(t(lang, "admin.promote.done", version=version))
    await message.answer("\n".join(lines))


async def promote_answered(
    query: CallbackQuery, callback_data: PromoteCb, session: AsyncSession, lang: str
) -> None:
    await query.answer()
    active = await active_model(session)
    if not callback_data.confirm:
        kept = active.version if active else callback_data.active
        await edit(query, t(lang, "admin.promote.kept", version=kept))
        return
    if active is None or active.version != callback_data.active:
        text = t(lang, "admin.promote.changed", version=callback_data.version)
        await edit(query, text)
        return
    try:
        await admin.promote_version(session, callback_data.version)
    except UnknownModel:
        text = t(lang, "admin.promote.unknown", version=callback_data.version)
        await edit(query, text)
        return
    await edit(query, t(lang, "admin.promote.done", version=callback_data.version))


def make_router() -> Router:
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())
    router.message.register(stats, Command("stats"))
    router.message.register(export, Command("export"))
    router.message.register(retrain, Command("retrain"))
    router.message.register(models, Command("models"))
    router.message.register(promote, Command("promote"))
    router.callback_query.register(
        promote_answered, PromoteCb.filter((F.version > 0) & (F.version <= MAX_VERSION))
    )
    return router
