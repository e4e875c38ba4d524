"""/start, /help, /cancel, /language, and the fallback for everything no feature took."""

from aiogram import F, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards
from bot.commands import command_list
from bot.keyboards import LanguageCb
from bot.messages import edit
from db.users import set_language
from emobot.i18n import LANGUAGES, t


async def start(message: Message, lang: str, is_admin: bool) -> None:
    await message.answer(t(lang, "start", commands=command_list(lang, is_admin)))


async def help_(message: Message, lang: str, is_admin: bool) -> None:
    await message.answer(t(lang, "help", commands=command_list(lang, is_admin)))


async def cancel(message: Message, state: FSMContext, lang: str) -> None:
    if await state.get_state() is None:
        await message.answer(t(lang, "nothing_to_cancel"))
        return
    await state.clear()
    await message.answer(t(lang, "cancelled"))


async def language(message: Message, lang: str) -> None:
    await message.answer(t(lang, "language.choose"), reply_markup=keyboards.languages())


async def language_chosen(
    query: CallbackQuery, callback_data: LanguageCb, session: AsyncSession
) -> None:
    await set_language(session, query.from_user.id, callback_data.code)
    await query.answer()
    await edit(query, t(callback_data.code, "language.set"))


async def unknown_command(message: Message, lang: str) -> None:
    await message.answer(t(lang, "unknown_command"))


async def outside_dialog(message: Message, lang: str) -> None:
    await message.answer(t(lang, "outside_dialog"))


async def stale_button(query: CallbackQuery) -> None:
    """A button of a finished dialog: acknowledged so the client stops its spinner."""
    await query.answer()


def make_router() -> Router:
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(language, Command("language"))
    router.callback_query.register(language_chosen, LanguageCb.filter(F.code.in_(LANGUAGES)))
    return router


def make_fallback_router() -> Router:
    """Included last: unknown commands (admin commands from non-admins too), stray input."""
    fallback = Router(name="fallback")
    fallback.message.register(unknown_command, F.text.startswith("/"))
    fallback.message.register(outside_dialog, StateFilter(None))
    fallback.callback_query.register(stale_button)
    return fallback
