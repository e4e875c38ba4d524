"""/contribute: consent (once per version of its text), class, photos (each checked), then save
or discard."""

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards, metrics
from bot.keyboards import BatchCb, ConsentCb, LabelCb
from bot.messages import drop_keyboard, edit, send
from bot.services.contribute import Pending, add_pending, check_photo, offer_done, save_batch
from bot.services.photos import incoming_image
from bot.services.privacy import CONSENT_VERSION
from bot.states import Contribute
from db.blobs import BlobStore
from db.models import User
from db.users import give_consent, has_consent
from emobot.i18n import label_name, t
from emobot.labels import CLASSES
from emobot.settings import Settings

not_command = ~F.text.startswith("/")


async def unsaved_batch(message: Message, state: FSMContext, lang: str) -> bool:
    """A command that would leave a batch whose photos are not saved yet (/predict,
    /contribute again): the batch is kept and the person asked to save or discard it first,
    rather than losing the photos without a word. True when asked."""
    if await state.get_state() not in (Contribute.photos.state, Contribute.confirm.state):
        return False
    data = await state.get_data()
    count = len(data.get("pending", []))
    if not count:
        return False
    await state.set_state(Contribute.confirm)
    label = label_name(lang, data["label"])
    await message.answer(
        t(lang, "contribute.unsaved", count=count, label=label),
        reply_markup=keyboards.save_or_discard(lang),
    )
    return True


async def contribute(message: Message, state: FSMContext, user: User, lang: str) -> None:
    if await unsaved_batch(message, state, lang):
        return
    await state.clear()
    if not has_consent(user, CONSENT_VERSION):
        await state.set_state(Contribute.consent)
        text = t(lang, "consent.ask")
        if user.consent_at is not None:  # agreed to an older text: say why we ask again
            text = f"{t(lang, 'consent.changed')}\n\n{text}"
        await message.answer(text, reply_markup=keyboards.consent(lang))
        return
    await state.set_state(Contribute.label)
    await message.answer(t(lang, "contribute.choose"), reply_markup=keyboards.labels(lang))


async def consent(
    query: CallbackQuery,
    callback_data: ConsentCb,
    state: FSMContext,
    session: AsyncSession,
    lang: str,
) -> None:
    await query.answer()
    if not callback_data.agree:
        await state.clear()
        await edit(query, t(lang, "consent.refused"))
        return
    await give_consent(session, query.from_user.id, CONSENT_VERSION)
    await state.set_state(Contribute.label)
    await edit(query, t(lang, "contribute.choose"), reply_markup=keyboards.labels(lang))


async def label_chosen(
    query: CallbackQuery, callback_data: LabelCb, state: FSMContext, lang: str
) -> None:
    await query.answer()
    await state.set_state(Contribute.photos)
    await state.set_data({"label": callback_data.label, "pending": []})
    await edit(query, t(lang, "contribute.send", label=label_name(lang, callback_data.label)))


async def photo(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    data = await state.get_data()
    pending = [Pending.from_json(p) for p in data.get("pending", [])]
    # A refused photo raises Rejected: the errors router answers it.
    item, conflicting = await check_photo(
        session,
        bot,
        incoming_image(message),
        pending,
        data["label"],
        max_bytes=settings.max_photo_bytes,
        max_pixels=settings.max_photo_pixels,
    )
    count = await add_pending(state, item)
    if count is None:  # the batch was saved or discarded meanwhile
        return
    text = t(lang, "contribute.accepted", count=count)
    if conflicting:
        text = f"{t(lang, 'contribute.conflicting_copy')}\n{text}"
    offer = await message.reply(text, reply_markup=keyboards.done(lang))
    # One "Done" on show at a time: the latest answer's.
    if previous := await offer_done(state, offer.message_id):
        await drop_keyboard(bot, message.chat.id, previous)


async def not_a_photo(message: Message, lang: str) -> None:
    metrics.refused("not_photo")
    await message.reply(t(lang, "reject.not_photo"))


async def use_buttons(message: Message, lang: str) -> None:
    await message.reply(t(lang, "contribute.use_buttons"))


async def confirm_first(message: Message, lang: str) -> None:
    await message.reply(t(lang, "contribute.confirm_first"))


async def done(query: CallbackQuery, state: FSMContext, bot: Bot, lang: str) -> None:
    data = await state.get_data()
    if not data.get("pending"):
        await query.answer(t(lang, "contribute.nothing"), show_alert=True)
        return
    await query.answer()
    await state.set_state(Contribute.confirm)
    if offer := data.get("offer"):  # pressed: the batch goes on in the summary's buttons
        await drop_keyboard(bot, query.from_user.id, offer)
    await send(
        query,
        t(
            lang,
            "contribute.summary",
            count=len(data["pending"]),
            label=label_name(lang, data["label"]),
        ),
        reply_markup=keyboards.save_or_discard(lang),
    )


async def save(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    await query.answer()
    data = await state.get_data()
    pending = [Pending.from_json(p) for p in data.get("pending", [])]
    saved = await save_batch(
        session, blobs, bot, query.from_user.id, data["label"], pending, settings.max_photo_bytes
    )
    await state.clear()
    lines = [t(lang, "contribute.saved", saved=saved.new)]
    if saved.known:
        lines.append(t(lang, "contribute.saved_some_known", known=saved.known))
    if saved.failed:
        lines.append(t(lang, "contribute.fetch_failed", failed=saved.failed))
    await edit(query, "\n".join(lines))


async def discard(query: CallbackQuery, state: FSMContext, lang: str) -> None:
    await query.answer()
    await state.clear()
    await edit(query, t(lang, "contribute.discarded"))


def make_router() -> Router:
    router = Router(name="contribute")
    router.message.register(contribute, Command("contribute"))
    router.callback_query.register(consent, Contribute.consent, ConsentCb.filter())
    router.callback_query.register(
        label_chosen, Contribute.label, LabelCb.filter(F.label.in_(CLASSES))
    )
    # A photo captioned /predict is for the predict router (it asks about the batch first).
    not_predict = ~Command("predict")
    router.message.register(photo, Contribute.photos, F.photo | F.document, not_predict)
    router.message.register(not_a_photo, Contribute.photos, not_command, not_predict)
    router.message.register(use_buttons, Contribute.consent, not_command)
    router.message.register(use_buttons, Contribute.label, not_command)
    router.message.register(confirm_first, Contribute.confirm, not_command)
    router.callback_query.register(done, Contribute.photos, BatchCb.filter(F.action == "done"))
    router.callback_query.register(save, Contribute.confirm, BatchCb.filter(F.action == "save"))
    router.callback_query.register(
        discard, Contribute.confirm, BatchCb.filter(F.action == "discard")
    )
    return router
