"""/mine: the contributor's photos, paged, with deleting one or all."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards
from bot.keyboards import MineCb
from bot.messages import edit, edit_photo, replace
from bot.services.mine import Page, delete, page_of, sheet_of
from db.blobs import BlobStore
from emobot.i18n import label_name, t
from emobot.labels import CLASSES


def render(lang: str, page: Page) -> tuple[str, InlineKeyboardMarkup | None]:
    if page.total == 0:
        return t(lang, "mine.empty"), None
    lines = [
        t(
            lang,
            "mine.header",
            total=page.total,
            counts="\n".join(f"{label_name(lang, c)}: {page.counts.get(c, 0)}" for c in CLASSES),
            page=page.page + 1,
            pages=page.pages,
        )
    ]
    lines += [
        t(
            lang,
            "mine.item",
            id=s.id,
            label=label_name(lang, s.label),
            date=s.created_at.strftime("%Y-%m-%d"),
        )
        for s in page.samples
    ]
    markup = keyboards.mine_page(lang, [s.id for s in page.samples], page.page, page.pages)
    return "\n".join(lines), markup


async def mine(message: Message, session: AsyncSession, blobs: BlobStore, lang: str) -> None:
    """The page as one picture of its photos, numbered, with the list as its caption: a
    person tells which photo a delete button means by its number."""
    assert message.from_user is not None
    page = await page_of(session, message.from_user.id, 0)
    text, markup = render(lang, page)
    if page.total == 0:
        await message.answer(text)
        return
    sheet = BufferedInputFile(await sheet_of(blobs, page), "mine.jpg")
    await message.answer_photo(sheet, caption=text, reply_markup=markup)


async def _show(
    query: CallbackQuery, session: AsyncSession, blobs: BlobStore, lang: str, page: int
) -> None:
    shown = await page_of(session, query.from_user.id, page)
    text, markup = render(lang, shown)
    if shown.total == 0:  # the last one deleted: no pictures of deleted photos stay on show
        await replace(query, text)
        return
    await edit_photo(query, await sheet_of(blobs, shown), text, reply_markup=markup)


async def turn(
    query: CallbackQuery,
    callback_data: MineCb,
    session: AsyncSession,
    blobs: BlobStore,
    lang: str,
) -> None:
    await query.answer()
    await _show(query, session, blobs, lang, callback_data.page)


async def delete_one(
    query: CallbackQuery,
    callback_data: MineCb,
    session: AsyncSession,
    blobs: BlobStore,
    lang: str,
) -> None:
    count = await delete(session, blobs, query.from_user.id, callback_data.sample_id)
    key = "mine.deleted" if count else "mine.gone"
    await query.answer(t(lang, key, count=count))
    await _show(query, session, blobs, lang, callback_data.page)


async def delete_all_ask(query: CallbackQuery, session: AsyncSession, lang: str) -> None:
    await query.answer()
    page = await page_of(session, query.from_user.id, 0)
    await edit(
        query,
        t(lang, "mine.delete_all_ask", total=page.total),
        reply_markup=keyboards.delete_all_confirm(lang),
    )


async def delete_all(
    query: CallbackQuery, session: AsyncSession, blobs: BlobStore, lang: str
) -> None:
    await query.answer()
    count = await delete(session, blobs, query.from_user.id, None)
    await replace(query, t(lang, "mine.deleted", count=count))


async def delete_all_kept(
    query: CallbackQuery, session: AsyncSession, blobs: BlobStore, lang: str
) -> None:
    await query.answer()
    await _show(query, session, blobs, lang, 0)


# Sample ids are PostgreSQL bigints: a button carrying another number was not made by the bot.
SAMPLE_IDS = range(1, 2**63)


def make_router() -> Router:
    router = Router(name="mine")
    router.message.register(mine, Command("mine"))
    router.callback_query.register(turn, MineCb.filter(F.action == "page"))
    router.callback_query.register(
        delete_one, MineCb.filter((F.action == "delete") & F.sample_id.in_(SAMPLE_IDS))
    )
    router.callback_query.register(delete_all_ask, MineCb.filter(F.action == "delete_all"))
    router.callback_query.register(delete_all, MineCb.filter(F.action == "delete_all_yes"))
    router.callback_query.register(delete_all_kept, MineCb.filter(F.action == "delete_all_no"))
    return router
