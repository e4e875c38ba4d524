"""/privacy (what is kept, withdrawing consent) and /forget (erasing everything about a person)."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards
from bot.keyboards import PrivacyCb
from bot.messages import edit
from bot.services.privacy import describe, withdraw
from db.blobs import BlobStore
from db.erasure import erase_contributions, forget
from db.models import User
from emobot.i18n import t
from emobot.settings import Settings


async def privacy(message: Message, user: User, settings: Settings, lang: str) -> None:
    await message.answer(
        describe(lang, user, settings.prediction_retention_hours),
        reply_markup=keyboards.privacy(lang, consented=user.consent_at is not None),
    )


async def withdraw_consent(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, lang: str
) -> None:
    await query.answer()
    photos = await withdraw(session, query.from_user.id)
    if photos is None:
        await edit(query, t(lang, "privacy.no_consent"))
        return
    await state.clear()  # a batch being collected is not saved without consent
    if not photos:
        await edit(query, t(lang, "privacy.withdrawn"))
        return
    await edit(
        query,
        f"{t(lang, 'privacy.withdrawn')}\n\n{t(lang, 'privacy.withdrawn_ask', count=photos)}",
        reply_markup=keyboards.erase_contributions(lang),
    )


async def erase(query: CallbackQuery, session: AsyncSession, blobs: BlobStore, lang: str) -> None:
    await query.answer()
    count = await erase_contributions(session, blobs, query.from_user.id)
    await edit(query, t(lang, "privacy.erased", count=count))


async def keep(query: CallbackQuery, lang: str) -> None:
    await query.answer()
    await edit(query, t(lang, "privacy.kept"))


async def forget_command(message: Message, lang: str) -> None:
    await message.answer(t(lang, "forget.ask"), reply_markup=keyboards.forget_confirm(lang))


async def forget_button(query: CallbackQuery, lang: str) -> None:
    await query.answer()
    markup = keyboards.forget_confirm(lang)
    await edit(query, t(lang, "forget.ask"), reply_markup=markup)


async def forget_confirmed(
    query: CallbackQuery, session: AsyncSession, blobs: BlobStore, lang: str
) -> None:
    await query.answer()
    erased = await forget(session, blobs, query.from_user.id)
    await edit(
        query,
        t(
            lang,
            "forget.done",
            contributions=erased.contributions,
            predictions=erased.predictions,
            dialogs=erased.dialogs,
        ),
    )


async def forget_cancelled(query: CallbackQuery, lang: str) -> None:
    await query.answer()
    await edit(query, t(lang, "forget.kept"))


def make_router() -> Router:
    router = Router(name="privacy")
    router.message.register(privacy, Command("privacy"))
    router.message.register(forget_command, Command("forget"))
    actions = {
        "withdraw": withdraw_consent,
        "erase": erase,
        "keep": keep,
        "forget": forget_button,
        "forget_yes": forget_confirmed,
        "forget_no": forget_cancelled,
    }
    for action, handler in actions.items():
        router.callback_query.register(handler, PrivacyCb.filter(F.action == action))
    return router
