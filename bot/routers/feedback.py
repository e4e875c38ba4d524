"""The buttons under an answer in a private chat: 👍 right / ✏️ correct it, the correction per
face, and the one consent question that lets confirmed and corrected faces become samples.

A button carries its request's id; a request that is not the presser's own (a forged button,
or one from another chat) changes nothing."""

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards
from bot.keyboards import FeedbackCb
from bot.messages import edit, send, set_keyboard
from bot.services.feedback import forget_sample, keep_faces
from bot.services.privacy import CONSENT_VERSION
from db.blobs import BlobStore
from db.feedback import predicted_labels, record, request_of, verdicts
from db.models import PredictionRequest, User
from db.users import give_consent, has_consent, mark_feedback_asked
from emobot.i18n import t
from emobot.labels import CLASSES
from emobot.settings import Settings

# Faces a correction offers buttons for (Telegram shows at most 100 buttons a message).
MAX_FACES = 8


async def _after_verdict(
    query: CallbackQuery,
    request: PredictionRequest,
    user: User,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    """With consent, the verdicts become samples; without, the question is asked once per
    consent text version; someone who said no keeps only their verdicts."""
    if has_consent(user, CONSENT_VERSION):
        made = await keep_faces(
            session,
            blobs,
            bot,
            request,
            max_bytes=settings.max_photo_bytes,
            max_pixels=settings.max_photo_pixels,
        )
        await query.answer(
            t(lang, "feedback.kept", count=made) if made else t(lang, "feedback.thanks")
        )
        return
    await query.answer(t(lang, "feedback.thanks"))
    if user.feedback_asked_version == CONSENT_VERSION:
        return
    await mark_feedback_asked(session, user.id, CONSENT_VERSION)
    await send(query, t(lang, "feedback.ask_consent"), keyboards.feedback_consent(lang, request.id))


async def own_request(
    query: CallbackQuery, callback_data: FeedbackCb, session: AsyncSession, lang: str
) -> PredictionRequest | None:
    """The presser's own answered request the button is for; None (and an alert) otherwise:
    a button forged for another person's request changes nothing."""
    request = await request_of(session, callback_data.request, query.from_user.id)
    if request is None:
        await query.answer(t(lang, "feedback.not_yours"), show_alert=True)
    return request


async def right(
    query: CallbackQuery,
    callback_data: FeedbackCb,
    user: User,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    request = await own_request(query, callback_data, session, lang)
    if request is None:
        return
    rows = await verdicts(session, request.id)
    for face, label in enumerate(predicted_labels(request)[:MAX_FACES]):
        if face in rows and rows[face].sample_id is not None and rows[face].actual != label:
            await forget_sample(session, blobs, rows[face])
        await record(session, request, face, label)
    await set_keyboard(query, keyboards.verdict_given(lang, request.id))
    await _after_verdict(query, request, user, session, blobs, bot, settings, lang)


async def correct(
    query: CallbackQuery, callback_data: FeedbackCb, session: AsyncSession, lang: str
) -> None:
    request = await own_request(query, callback_data, session, lang)
    if request is None:
        return
    faces = min(len(predicted_labels(request)), MAX_FACES)
    chosen = {face: row.actual for face, row in (await verdicts(session, request.id)).items()}
    await query.answer(t(lang, "feedback.pick"))
    await set_keyboard(query, keyboards.corrections(lang, request.id, faces, chosen))


async def chosen(
    query: CallbackQuery,
    callback_data: FeedbackCb,
    user: User,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    request = await request_of(session, callback_data.request, query.from_user.id)
    faces = min(len(predicted_labels(request)), MAX_FACES) if request is not None else 0
    if request is None or not 0 <= callback_data.face < faces:
        await query.answer(t(lang, "feedback.not_yours"), show_alert=True)
        return
    face, label = callback_data.face, callback_data.label
    before = (await verdicts(session, request.id)).get(face)
    if before is not None and before.sample_id is not None and before.actual != label:
        await forget_sample(session, blobs, before)
    await record(session, request, face, label)
    picked = {f: row.actual for f, row in (await verdicts(session, request.id)).items()}
    # One face: its pick is the whole correction. Several: the keyboard stays until "Done".
    markup = (
        keyboards.verdict_given(lang, request.id)
        if faces == 1
        else keyboards.corrections(lang, request.id, faces, picked)
    )
    await set_keyboard(query, markup)
    await _after_verdict(query, request, user, session, blobs, bot, settings, lang)


async def done(query: CallbackQuery, callback_data: FeedbackCb, lang: str) -> None:
    await query.answer(t(lang, "feedback.thanks"))
    await set_keyboard(query, keyboards.verdict_given(lang, callback_data.request))


async def consent_answered(
    query: CallbackQuery,
    callback_data: FeedbackCb,
    user: User,
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    settings: Settings,
    lang: str,
) -> None:
    request = await own_request(query, callback_data, session, lang)
    if request is None:
        return
    await query.answer()
    if callback_data.action == "no":
        await edit(query, t(lang, "feedback.verdict_only"))
        return
    await give_consent(session, user.id, CONSENT_VERSION)
    made = await keep_faces(
        session,
        blobs,
        bot,
        request,
        max_bytes=settings.max_photo_bytes,
        max_pixels=settings.max_photo_pixels,
    )
    await edit(query, t(lang, "feedback.kept", count=made))


def make_router() -> Router:
    router = Router(name="feedback")
    router.callback_query.filter(F.message.chat.type == "private")
    # Request ids are PostgreSQL bigints: a button carrying another number was not made by us.
    mine = FeedbackCb.filter(F.request.in_(range(1, 2**63)))
    router.callback_query.register(right, mine, FeedbackCb.filter(F.action == "ok"))
    router.callback_query.register(correct, mine, FeedbackCb.filter(F.action == "fix"))
    router.callback_query.register(
        chosen, mine, FeedbackCb.filter((F.action == "set") & F.label.in_(CLASSES))
    )
    router.callback_query.register(done, mine, FeedbackCb.filter(F.action == "done"))
    router.callback_query.register(
        consent_answered, mine, FeedbackCb.filter(F.action.in_(("yes", "no")))
    )
    return router
