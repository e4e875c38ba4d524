"""/predict and any photo outside a dialog: stored and queued; the worker answers."""

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.routers.contribute import unsaved_batch
from bot.services.clips import incoming_clip, is_video_document, queue_clip
from bot.services.predict import SkippedPhotos, queue_photo
from bot.states import Predict
from db.blobs import BlobStore
from emobot.i18n import t
from emobot.settings import Settings


async def predict(message: Message, state: FSMContext, lang: str) -> None:
    if await unsaved_batch(message, state, lang):
        return
    await state.set_state(Predict.photo)
    await message.answer(t(lang, "predict.ask"))


async def photo(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    skipped: SkippedPhotos,
    lang: str,
) -> None:
    if message.from_user is not None and await skipped.should_skip(
        session, message.from_user.id, settings.max_queued_per_user
    ):
        skipped.skip(bot, message.from_user.id, message, lang, settings.max_queued_per_user)
        return
    await bot.send_chat_action(message.chat.id, "typing")
    # A refused photo raises Rejected: the errors router answers it.
    await queue_photo(
        session, blobs, bot, message, settings.max_photo_bytes, settings.max_photo_pixels, lang
    )
    await state.clear()
    await message.reply(t(lang, "predict.queued"))


async def clip(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    skipped: SkippedPhotos,
    lang: str,
) -> None:
    """A video note, GIF, video or video file: queued as one request, answered with a chart."""
    incoming = incoming_clip(message)
    assert incoming is not None  # the filter matched
    if message.from_user is not None and await skipped.should_skip(
        session, message.from_user.id, settings.max_queued_per_user
    ):
        skipped.skip(bot, message.from_user.id, message, lang, settings.max_queued_per_user)
        return
    await bot.send_chat_action(message.chat.id, "typing")
    await queue_clip(session, blobs, bot, message, incoming, settings.max_clip_bytes, lang)
    await state.clear()
    text = t(lang, "predict.clip_queued")
    if incoming.duration is not None and incoming.duration > settings.clip_max_seconds:
        limit = f"{settings.clip_max_seconds:g}"
        text += "\n" + t(lang, "predict.clip_cut", duration=incoming.duration, limit=limit)
    await message.reply(text)


async def not_a_photo(message: Message, lang: str) -> None:
    metrics.refused("not_photo")
    await message.reply(t(lang, "reject.not_photo"))


def make_router() -> Router:
    router = Router(name="predict")
    # Clips first: an animation carries a `document` too, and a video file is a document.
    clips = F.video_note | F.animation | F.video | F.func(is_video_document)
    router.message.register(clip, StateFilter(None, Predict.photo), clips)
    # Before the command: a photo captioned /predict (Command reads captions too) is queued.
    router.message.register(photo, StateFilter(None, Predict.photo), F.photo | F.document)
    router.message.register(predict, Command("predict"))
    router.message.register(not_a_photo, Predict.photo, ~F.text.startswith("/"))
    return router
