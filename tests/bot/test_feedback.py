"""Feedback on answers through the real Dispatcher and the fake Bot API: the worker's buttons
under an answer, the verdict stored, with consent the face kept as a sample (and erased by
/forget), without it the verdict alone; a forged button changes nothing."""

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from bot.keyboards import FeedbackCb
from db.exporter import export_dataset
from db.models import Feedback, PredictionRequest, Sample
from emobot.feedback import answer_buttons, pack
from ml.faces import decode_image
from ml.upright import upright_faces
from playground.botapi import BotCall, FakeUser
from tests.bot.conftest import BotHarness, Photos, text_has
from worker.metrics import QueueCollector
from worker.replies import Reply, send_reply


def test_the_workers_buttons_are_the_bots_callback_data() -> None:
    assert pack(12, "ok") == FeedbackCb(request=12, action="ok").pack()
    for row in answer_buttons("en", 7)["inline_keyboard"]:
        for button in row:
            assert FeedbackCb.unpack(button["callback_data"]).request == 7


def result_of(photo: bytes, label: str) -> dict[str, Any]:
    """A result as the worker stores it: the photo's faces, each answered `label`."""
    faces, image, turn = upright_faces(decode_image(photo))
    probs = [0.9 if c == label else 0.1 / 3 for c in ("negative", "happy", "surprise", "neutral")]
    return {
        "classes": ["negative", "happy", "surprise", "neutral"],
        "width": image.shape[1],
        "height": image.shape[0],
        "turn": turn,
        "faces": [{"box": [int(v) for v in f.box], "probs": probs} for f in faces],
    }


async def answered(harness: BotHarness, user: FakeUser, photo: bytes, label: str) -> BotCall:
    """The person's photo queued by the bot, then answered as the worker answers: the result
    saved, the reply sent with the feedback buttons."""
    user.send_photo(photo)
    await harness.reply(user, lambda c: c.method == "sendMessage")  # "working on it"
    async with harness.storage.sessions() as session:
        request = await session.scalar(
            select(PredictionRequest).order_by(PredictionRequest.id.desc())
        )
        assert request is not None
        result = await asyncio.to_thread(result_of, photo, label)
        await session.execute(
            update(PredictionRequest)
            .where(PredictionRequest.id == request.id)
            .values(result=result, status="done", model_version=3)
        )
        await session.commit()
    assert harness.bot is not None
    await send_reply(
        harness.bot,
        user.id,
        request.message_id,
        Reply("😄"),
        reply_markup=answer_buttons(request.language, request.id),
    )
    return await harness.reply(user, lambda c: c.method == "sendMessage" and c.text == "😄")


async def rows(harness: BotHarness) -> list[Feedback]:
    async with harness.storage.sessions() as session:
        return list(await session.scalars(select(Feedback).order_by(Feedback.face)))


async def test_a_confirmed_face_with_consent_becomes_a_sample_and_forget_erases_it(
    harness: BotHarness, photos: Photos, tmp_path: Path
) -> None:
    user = harness.user(70, "Ann", "ru")
    answer = await answered(harness, user, photos.one_face, "happy")
    user.press(answer, text="👍 верно")
    ask = await harness.reply(user, text_has("Можно сохранять"))
    # Judged: only "correct it" stays, for a change of mind.
    [fix] = harness.emulator.message(70, answer.message_id)["reply_markup"]["inline_keyboard"][0]
    assert fix["text"] == "✏️ исправить"
    [verdict] = await rows(harness)
    assert (verdict.predicted, verdict.actual, verdict.model_version) == ("happy", "happy", 3)
    assert verdict.sample_id is None and await harness.samples() == []
    user.press(ask, text="Согласен(на)")
    await harness.reply(user, text_has("добавлено в датасет: 1"))
    [sample] = await harness.samples()
    assert (sample.source, sample.label, sample.contributor_id) == ("feedback", "happy", 70)
    assert sample.face_box is not None and sample.width < 512  # the face's crop, not the photo
    crop = await harness.storage.blobs.get(sample.blob_key)
    assert crop != photos.one_face
    [verdict] = await rows(harness)
    assert verdict.sample_id == sample.id
    # /mine lists it, and the export has it under its source.
    user.send_text("/mine")
    listed = await harness.reply(user, lambda c: c.method == "sendPhoto")
    assert "Ваши фото: 1" in (listed.text or "")
    archive = tmp_path / "feedback.zip"
    summary = await export_dataset(
        archive, harness.storage.sessions, harness.storage.blobs, source="feedback"
    )
    assert summary.images == 1
    # A correction later moves the sample to the new label.
    user.press(answer.message_id, data=FeedbackCb(request=verdict.request_id, action="fix").pack())
    await harness.reply(user, lambda c: c.method == "editMessageReplyMarkup")
    user.press(answer.message_id, text="удивлённый")
    await harness.reply(user, lambda c: c.method == "answerCallbackQuery")
    async with asyncio.timeout(10):
        while [s.label for s in await harness.samples() if s.status == "active"] != ["surprise"]:  # noqa: ASYNC110 - rows, no event
            await asyncio.sleep(0.05)
    # /forget erases the verdicts and the samples with the person.
    user.send_text("/forget")
    confirm = await harness.reply(user)
    user.press(confirm, data="privacy:forget_yes")
    await harness.reply(user, lambda c: "editMessage" in c.method)
    assert await rows(harness) == []
    assert await harness.samples() == []


async def test_without_consent_only_the_verdict_is_kept_and_nobody_is_asked_twice(
    harness: BotHarness, photos: Photos
) -> None:
    user = harness.user(71, "Bob", "en")
    answer = await answered(harness, user, photos.three_faces, "neutral")
    user.press(answer, text="✏️ correct it")
    markup = await harness.reply(user, lambda c: c.method == "editMessageReplyMarkup")
    texts = [b["text"] for b in markup.buttons]
    assert texts[0] == "1. 😟" and texts[4] == "2. 😟" and texts[-1] == "✅ Done"
    user.press(
        answer.message_id, data=FeedbackCb(request=1, action="set", face=1, label="happy").pack()
    )
    ask = await harness.reply(user, text_has("May I keep"))
    user.press(ask, text="No")
    await harness.reply(user, text_has("only your verdicts"))
    [verdict] = await rows(harness)
    assert (verdict.face, verdict.predicted, verdict.actual) == (1, "neutral", "happy")
    # Another verdict: stored, not asked again, no photo kept.
    user.press(
        answer.message_id, data=FeedbackCb(request=1, action="set", face=0, label="neutral").pack()
    )
    await harness.reply(user, lambda c: c.method == "answerCallbackQuery")
    await asyncio.sleep(0.5)
    assert len(await rows(harness)) == 2
    assert not [c for c in harness.emulator.calls_in(71) if "May I keep" in (c.text or "")]
    assert await harness.samples() == []


async def test_a_forged_button_for_another_persons_answer_changes_nothing(
    harness: BotHarness, photos: Photos
) -> None:
    owner = harness.user(72, "Ann", "en")
    await answered(harness, owner, photos.one_face, "happy")
    mallory = harness.user(73, "Mallory", "en")
    mallory.send_text("/start")
    sent = await harness.reply(mallory)
    for data in (pack(1, "ok"), pack(1, "set", 0, "negative"), pack(1, "yes")):
        query = {
            "id": f"forged-{data}",
            "from": mallory.as_json(),
            "chat_instance": "73",
            "message": harness.emulator.message(73, sent.message_id),
            "data": data,
        }
        harness.emulator.push_update({"callback_query": query}, chat_id=73)
        async with asyncio.timeout(10):
            while query["id"] not in harness.emulator.callback_answers:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert harness.emulator.callback_answers[query["id"]].get("show_alert") is True
    async with harness.storage.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Feedback)) == 0
        assert await session.scalar(select(func.count()).select_from(Sample)) == 0


async def test_stats_and_metrics_give_the_live_accuracy(
    harness: BotHarness, photos: Photos
) -> None:
    user = harness.user(74, "Bob", "en")
    answer = await answered(harness, user, photos.three_faces, "neutral")
    user.press(answer, text="✏️ correct it")
    await harness.reply(user, lambda c: c.method == "editMessageReplyMarkup")
    for face, label in ((0, "neutral"), (1, "happy")):
        data = FeedbackCb(request=1, action="set", face=face, label=label).pack()
        user.press(answer.message_id, data=data)
        await harness.reply(user, lambda c: c.method == "answerCallbackQuery")
    async with asyncio.timeout(10):
        while len(await rows(harness)) < 2:  # noqa: ASYNC110 - rows, no event
            await asyncio.sleep(0.05)
    admin = harness.user(1000, "Admin", "en")
    admin.send_text("/stats")
    stats = await harness.reply(admin, text_has("verdicts"))
    assert "model v3, last 7 days: 1 of 2 faces right (50%)" in (stats.text or "")
    assert "happy (1): answered neutral 1" in (stats.text or "")

    collector = QueueCollector(harness.storage)
    await collector.refresh()
    samples = {
        (m.name, tuple(s.labels.values())): s.value for m in collector.collect() for s in m.samples
    }
    assert samples[("emobot_feedback_accuracy", ("3", "30"))] == 0.5
    assert samples[("emobot_feedback_faces", ("3", "7"))] == 2
    assert samples[("emobot_feedback_confusion", ("3", "7", "happy", "neutral"))] == 1
