"""Clips end to end: the real Dispatcher polls the fake Bot API, the worker (with the shipped
model) answers; the clips are built at test time from the public-domain faces (tests/clips.py),
the astronaut smiling and Grace Hopper neutral, so the timeline must change when the face does.
"""

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from PIL import Image
from sqlalchemy import select

from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from ml.inference import shipped_model_path
from ml.timeline import timeline
from playground.botapi import BotCall
from runtime.telegram import make_client
from tests.bot.conftest import BotHarness, running_harness
from tests.clips import audio_only, make_clip
from worker.service import Worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALTERNATING = ["happy", "neutral"] * 3  # 6 s, the face changes every second


@asynccontextmanager
async def platform(
    storage: Storage, settings: Settings, **extra: object
) -> AsyncIterator[tuple[BotHarness, Worker]]:
    """The bot and one worker on the same fake Bot API; short waits, the shipped model."""
    settings = settings.model_copy(
        update={
            "model_path": shipped_model_path(),
            "lease_seconds": 2,
            "poll_seconds": 0.5,
            "batch_wait_ms": 20,
            **extra,
        }
    )
    async with running_harness(storage, settings) as harness:
        worker_settings = settings.model_copy(update={"telegram_api_url": harness.server.url})
        bot = make_client(worker_settings)
        worker = Worker(worker_settings, storage, bot)
        await worker.models.load()
        task = asyncio.create_task(worker.run())
        try:
            yield harness, worker
        finally:
            worker.stop()
            await task
            await bot.session.close()


def is_chart(call: BotCall) -> bool:
    return call.method == "sendPhoto"


async def stored(storage: Storage) -> list[PredictionRequest]:
    async with storage.sessions() as session:
        rows = await session.scalars(select(PredictionRequest).order_by(PredictionRequest.id))
        return list(rows)


@pytest.mark.parametrize("kind", ["note", "gif", "video", "document"])
async def test_a_clip_is_answered_with_a_chart_that_follows_the_face(
    storage: Storage, settings: Settings, kind: str
) -> None:
    data = make_clip(ALTERNATING, kind="gif" if kind == "gif" else "note", size=(320, 320))
    async with platform(storage, settings) as (harness, _):
        user = harness.user(7001, "Clip", language_code="en")
        sent = {
            "note": lambda: user.send_video_note(data, duration=6),
            "gif": lambda: user.send_animation(data, file_name="a.gif", mime_type="image/gif"),
            "video": lambda: user.send_video(data, duration=6),
            "document": lambda: user.send_document(data, "clip.mp4", "video/mp4"),
        }[kind]()
        queued = await harness.reply(user, lambda c: "Clip received" in (c.text or ""))
        chart = await harness.reply(user, is_chart, seconds=60)
    # A reply to the person's message, a picture, and the summary in their language.
    assert chart.params["reply_parameters"]["message_id"] == sent["message_id"]
    assert queued.params["reply_parameters"]["message_id"] == sent["message_id"]
    with Image.open(io.BytesIO(chart.files["photo"])) as picture:
        assert picture.format == "PNG" and picture.width >= 600
    assert chart.text is not None and chart.text.startswith("Mostly happy (")
    assert "neutral at 0:0" in chart.text
    # The stored timeline changes at the right times: happy in even seconds, neutral in odd
    # ones (a frame near a change may be unsure).
    [request] = await stored(storage)
    assert request.kind == "video" and request.status == "done"
    line = timeline(request.result, settings.unsure_below)
    main = line.tracks[0]
    for t, label in zip(main.times, main.labels, strict=True):
        if abs(t - round(t)) < 0.3:
            continue  # a change of face within the smoothing window
        assert label == ALTERNATING[int(t)], (t, label)
    # The reaction says the same as the summary.
    reaction = harness.emulator.calls_in(user.id, after=0)
    assert any(
        c.method == "setMessageReaction" and c.params["reaction"][0]["emoji"] == "😁"
        for c in reaction
    )


async def test_a_clip_without_a_face_and_a_long_clip_are_told_so(
    storage: Storage, settings: Settings
) -> None:
    no_face = make_clip([None, None], kind="note", size=(256, 256))
    long = make_clip(["happy"] * 4, kind="note", size=(256, 256), fps=5)
    async with platform(storage, settings, clip_max_seconds=2) as (harness, _):
        user = harness.user(7002, "Clip", language_code="en")
        user.send_video_note(no_face, duration=2)
        answer = await harness.reply(user, lambda c: "any frame" in (c.text or ""), seconds=60)
        assert answer.method == "sendMessage"
        assert "could not find a face in any frame" in (answer.text or "")
        user.send_video(long, duration=4)
        queued = await harness.reply(user, lambda c: "Clip received" in (c.text or ""))
        assert "4 s long: I will look at its first 2 s" in (queued.text or "")
        chart = await harness.reply(user, is_chart, seconds=60)
        assert "(the first 2 s of 4 s)" in (chart.text or "")
        admin = harness.user(1000, "Admin", language_code="en")
        admin.send_text("/stats")
        stats = await harness.reply(admin, lambda c: "Answered" in (c.text or ""))
        assert "Answered: photos 0, clips 2" in (stats.text or "")


BAD = {
    "not a video": (b"this is not a video at all" * 100, "not a video I can read"),
    "truncated": (None, "could not read this clip"),
    "audio only": (audio_only(), "only sound"),
    "zero frames": (None, "could not read this clip"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_clips_get_a_clear_answer_and_nothing_is_kept(
    storage: Storage, settings: Settings, case: str
) -> None:
    data, expected = BAD[case]
    if case == "truncated":
        data = make_clip(ALTERNATING, kind="note", size=(256, 256))[:3000]
    if case == "zero frames":
        whole = make_clip(["happy"], kind="note", size=(256, 256))
        data = whole[: whole.index(b"mdat") + 4]  # the header, no media data
    assert data is not None
    async with platform(storage, settings) as (harness, _):
        user = harness.user(7003, "Clip", language_code="en")
        user.send_video(data, duration=6)
        answer = await harness.reply(user, lambda c: expected in (c.text or ""), seconds=60)
        assert answer.params["reply_parameters"]["message_id"] is not None
        # The clip is not kept after the answer (PREDICTION_RETENTION_HOURS=0): the worker
        # purges after answering.
        async with asyncio.timeout(15):
            while (await stored(storage))[0].photo_deleted_at is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    [request] = await stored(storage)
    assert request.status == "failed" and request.replied_at is not None
    assert not await storage.blobs.exists(request.blob_key)


async def test_a_clip_over_20_mb_is_refused_before_downloading(
    storage: Storage, settings: Settings
) -> None:
    data = make_clip(["happy"], kind="note", size=(128, 128))
    async with platform(storage, settings) as (harness, _):
        harness.emulator.hold_downloads()  # a download would hang here: none must start
        user = harness.user(7004, "Clip", language_code="en")
        user.send_video_note(data, file_size=25 * 1024 * 1024)
        answer = await harness.reply(user)
        assert harness.emulator.held_downloads == 0
        harness.emulator.release_downloads()
    assert "25.0 MB" in (answer.text or "") and "at most 20 MB" in (answer.text or "")
    assert await stored(storage) == []
