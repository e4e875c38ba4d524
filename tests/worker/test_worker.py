"""The worker end to end: real PostgreSQL, moto S3, the fake Bot API over HTTP, real models."""

import asyncio
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import registry
from db.engine import Storage
from db.models import PredictionRequest, User
from emobot.i18n import t
from emobot.settings import Settings
from ml.faces import decode_image, find_faces
from ml.inference import flatbuffer_key, flatbuffer_path
from playground.botapi import BotAPIEmulator, BotAPIError, BotAPIServer
from runtime.botclient import BotClient
from tests.conftest import fer_face
from tests.worker.conftest import enqueue_key, enqueue_photo, photo, running
from worker import replies
from worker.service import Worker

API = tuple[BotAPIEmulator, BotAPIServer]


async def _request(sessions: async_sessionmaker[AsyncSession], request_id: int):
    async with sessions() as session:
        row = await session.get(PredictionRequest, request_id)
        assert row is not None
        return row


async def _wait_status(
    sessions: async_sessionmaker[AsyncSession], ids: list[int], within: float = 20.0
) -> list[PredictionRequest]:
    """Wait until none of `ids` is queued or processing."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(PredictionRequest)
                    .where(PredictionRequest.id.in_(ids))
                    .order_by(PredictionRequest.id)
                )
            )
        if all(r.status in ("done", "failed") for r in rows):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError([(r.id, r.status, r.error) for r in rows])
        await asyncio.sleep(0.05)


async def test_a_queued_face_gets_its_emotion_in_the_requests_language(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    async with storage.sessions.begin() as session:
        # The users' languages now differ from the requests': the request's decides.
        session.add(User(id=501, language="ru"))
        session.add(User(id=502, language="en"))
    english = await enqueue_photo(
        storage, fer_face(), chat_id=501, user_id=501, message_id=7, language="en"
    )
    russian = await enqueue_photo(
        storage, fer_face(), chat_id=502, user_id=502, message_id=8, language="ru"
    )
    async with running(Worker(worker_settings, storage, bot)):
        reply_en = await emulator.wait_for(501, timeout=30)
        reply_ru = await emulator.wait_for(502, timeout=30)
        rows = await _wait_status(storage.sessions, [english, russian])

    assert reply_en.method == "sendMessage"
    assert reply_en.text == "😄 happy\nhappy 97% · negative 1% · surprised 1% · neutral 1%"
    assert reply_en.params["reply_parameters"]["message_id"] == 7
    # A private chat's answer takes feedback: its buttons carry the request's id.
    assert [b["text"] for b in reply_en.buttons] == ["👍 right", "✏️ correct it"]
    assert reply_en.buttons[0]["callback_data"] == f"fb:{english}:ok:0:"
    assert reply_ru.text is not None and reply_ru.text.startswith("😄 счастливый\nсчастливый 97%")
    for row in rows:
        assert row.status == "done" and row.replied_at is not None and row.error is None
        assert row.attempts == 1 and row.locked_until is None
        [face] = row.result["faces"]
        assert face["box"] == [0, 0, 48, 48]  # a 48×48 crop is classified whole
        assert face["probs"][1] == pytest.approx(0.97, abs=1e-3)
        assert row.model_version is None  # the registry is empty: MODEL_PATH answered
        assert {"fetch", "detect", "model", "wait_ms", "batch"} <= row.timings.keys()
    # Both photos arrived together: one batch, one model call for the two faces.
    assert rows[0].timings["batch"] == 2 and rows[0].timings["faces"] == 2


async def test_several_faces_get_a_numbered_picture_and_no_face_gets_advice(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    group = await enqueue_photo(storage, photo("three_faces.jpg"), chat_id=601)
    empty = await enqueue_photo(storage, photo("coffee.jpg"), chat_id=602)
    async with running(Worker(worker_settings, storage, bot)):
        picture = await emulator.wait_for(601, timeout=30)
        advice = await emulator.wait_for(602, timeout=30)
        await _wait_status(storage.sessions, [group, empty])

    assert picture.method == "sendPhoto"
    assert picture.text == replies.several_faces(
        [[0.01, 0.97, 0.01, 0.01]] * 3, "ru", worker_settings.unsure_below
    )
    line = "😄 счастливый 97% · негативный 1% · удивлённый 1% · нейтральный 1%"
    assert picture.text.splitlines()[1:] == [f"{i}. {line}" for i in (1, 2, 3)]
    with Image.open(io.BytesIO(picture.files["photo"])) as image:
        assert image.format == "JPEG" and image.size == (512, 512)
    assert picture.reply_markup is None  # not a person's private chat: no feedback buttons
    assert advice.method == "sendMessage"
    assert advice.text == t("ru", "worker.no_face")
    assert advice.reply_markup is None  # no face: nothing to judge
    row = await _request(storage.sessions, group)
    assert len(row.result["faces"]) == 3 and row.status == "done"
    assert (await _request(storage.sessions, empty)).result["faces"] == []


async def test_a_groups_photo_is_answered_in_its_topic_without_feedback_buttons(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    emulator.group(-650, "Forum", forum=True)
    async with storage.sessions.begin() as session:
        session.add(User(id=651))
    request = await enqueue_photo(
        storage, fer_face(), chat_id=-650, user_id=651, message_id=4, thread_id=12
    )
    async with running(Worker(worker_settings, storage, bot)):
        answer = await emulator.wait_for(-650, timeout=30)
        await _wait_status(storage.sessions, [request])
    assert answer.params["message_thread_id"] == 12
    assert answer.reply_markup is None
    assert emulator.message(-650, answer.message_id)["message_thread_id"] == 12


async def test_a_photo_sent_upside_down_is_answered_as_the_upright_one(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    upright = decode_image(photo("three_faces.jpg"))
    upside_down = cv2.imencode(".jpg", cv2.rotate(upright, cv2.ROTATE_180))[1].tobytes()
    sent = await enqueue_photo(storage, upside_down, chat_id=605)
    async with running(Worker(worker_settings, storage, bot)):
        picture = await emulator.wait_for(605, timeout=30)
        await _wait_status(storage.sessions, [sent])

    row = await _request(storage.sessions, sent)
    assert row.result["turn"] == 180 and len(row.result["faces"]) == 3
    expected = [list(f.box) for f in find_faces(upright)]
    for face, box in zip(row.result["faces"], expected, strict=True):
        assert np.abs(np.array(face["box"]) - box).max() <= 3  # re-encoded: a pixel or two off
    # The numbered boxes are drawn on the photo turned upright.
    with Image.open(io.BytesIO(picture.files["photo"])) as image:
        drawn = cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR)
    assert (
        np.abs(drawn.astype(int) - upright).mean()
        < np.abs(drawn.astype(int) - cv2.rotate(upright, cv2.ROTATE_180)).mean()
    )


async def test_an_unsure_face_is_answered_with_its_two_likeliest_emotions(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    # The constant model is 97 % sure: below a threshold of 98 % it is not sure enough.
    cautious = worker_settings.model_copy(update={"unsure_below": 0.98})
    one = await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=611)
    group = await enqueue_photo(storage, photo("three_faces.jpg"), chat_id=612)
    async with running(Worker(cautious, storage, bot)):
        single = await emulator.wait_for(611, timeout=30)
        several = await emulator.wait_for(612, timeout=30)
        await _wait_status(storage.sessions, [one, group])
    # Second place is a tie of 1 % each: the first class in order, negative.
    assert single.text.splitlines()[0] == "🤔 Не уверен: счастливый или негативный"
    assert single.text.splitlines()[1].startswith("счастливый 97%")
    assert [line[:4] for line in several.text.splitlines()[1:]] == ["1. 🤔", "2. 🤔", "3. 🤔"]


async def test_a_registered_model_is_unsure_below_its_own_threshold(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: API,
    constant_model: Callable[[str], Path],
) -> None:
    """The threshold registered with a model (its calibration) wins over UNSURE_BELOW."""
    emulator, _ = botapi
    happy = constant_model("happy")  # 97 % sure: sure by the UNSURE_BELOW setting
    _, key = await storage.blobs.put_content(happy.read_bytes(), prefix="models")
    await storage.blobs.put(flatbuffer_key(key), flatbuffer_path(happy).read_bytes())
    async with storage.sessions.begin() as session:
        model = await registry.register_model(
            session, blob_key=key, arch="test", metrics={"calibration": {"unsure_below": 0.98}}
        )
        await registry.promote(session, model.version)
    request = await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=613)
    async with running(Worker(worker_settings, storage, bot)):
        single = await emulator.wait_for(613, timeout=30)
        (row,) = await _wait_status(storage.sessions, [request])
    assert worker_settings.unsure_below < 0.97
    assert single.text.splitlines()[0] == "🤔 Не уверен: счастливый или негативный"
    assert row.result["unsure_below"] == 0.98  # kept with the result for a retried reply


def test_unsure_texts_in_both_languages() -> None:
    probs = [0.30, 0.45, 0.05, 0.20]
    assert replies.verdict(probs, "en", 0.5) == "🤔 Not sure: happy or negative"
    assert replies.verdict(probs, "en", 0.4) == "😄 happy"
    assert replies.short_label(probs, "ru", 0.5) == "счастливый / негативный?"
    assert replies.short_label(probs, "ru", 0.4) == "счастливый"


async def test_missing_or_corrupt_photos_fail_cleanly_and_the_rest_of_the_batch_is_answered(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    missing = await enqueue_key(storage.sessions, "images/00/gone", chat_id=701)
    _, corrupt_key = await storage.blobs.put_content(fer_face()[:200])  # a truncated JPEG
    corrupt = await enqueue_key(storage.sessions, corrupt_key, chat_id=702)
    _, text_key = await storage.blobs.put_content(b"%PDF-1.4 not a photo")
    not_image = await enqueue_key(storage.sessions, text_key, chat_id=703)
    good = await enqueue_photo(storage, fer_face(), chat_id=704)
    async with running(Worker(worker_settings, storage, bot)):
        rows = await _wait_status(storage.sessions, [missing, corrupt, not_image, good])
        await emulator.wait_for(704, timeout=30)

    errors = {r.id: (r.status, r.error, r.replied_at is not None) for r in rows}
    assert errors[missing][0] == "failed" and "missing" in errors[missing][1]
    assert errors[corrupt][0] == "failed" and "unreadable" in errors[corrupt][1]
    assert errors[not_image][0] == "failed" and "unreadable" in errors[not_image][1]
    assert all(r.attempts == 1 for r in rows)  # a bad photo is not retried
    assert errors[good] == ("done", None, True)
    for chat in (701, 702, 703):
        [call] = [c for c in emulator.calls if c.chat_id == chat]
        assert call.text == t("ru", "worker.unreadable")
        assert errors[{701: missing, 702: corrupt, 703: not_image}[chat]][2]  # replied


async def test_flood_control_defers_and_a_blocked_user_fails_without_retrying(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    emulator.fail_next("sendMessage", retry_after=1)
    waited = await enqueue_photo(storage, fer_face(), chat_id=801)
    async with running(Worker(worker_settings, storage, bot)):
        [row] = await _wait_status(storage.sessions, [waited])
        # Back to the queue for the second asked for, then answered from the stored result.
        assert row.status == "done" and row.attempts == 2 and "flood control" in row.error
        assert row.timings["batch"] == 1
        assert len([c for c in emulator.calls if c.chat_id == 801]) == 1

        emulator._failures["sendmessage"] = [
            BotAPIError(403, "Forbidden: bot was blocked by the user")
        ]
        blocked = await enqueue_photo(storage, fer_face(), chat_id=802)
        [row] = await _wait_status(storage.sessions, [blocked])
    assert row.status == "failed" and row.attempts == 1 and row.replied_at is None
    assert "blocked" in row.error
    assert [c for c in emulator.calls if c.chat_id == 802] == []


async def test_a_promoted_model_answers_from_the_next_batch_without_a_restart(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: API,
    constant_model: Callable[[str], Path],
) -> None:
    emulator, _ = botapi
    worker = Worker(worker_settings, storage, bot)
    async with running(worker):
        first = await enqueue_photo(storage, fer_face(), chat_id=901)
        assert (await emulator.wait_for(901, timeout=30)).text.startswith("😄")

        surprise = constant_model("surprise")
        _, key = await storage.blobs.put_content(surprise.read_bytes(), prefix="models")
        await storage.blobs.put(flatbuffer_key(key), flatbuffer_path(surprise).read_bytes())
        async with storage.sessions.begin() as session:
            model = await registry.register_model(session, blob_key=key, arch="test", metrics={})
            await registry.promote(session, model.version)
        deadline = asyncio.get_running_loop().time() + 20
        while worker.models.current is None or worker.models.current.version != model.version:
            # The NOTIFY loads it aside; the swap happens between batches (the idle loop
            # wakes at least every poll_seconds).
            assert asyncio.get_running_loop().time() < deadline, "the promotion was not picked up"
            await asyncio.sleep(0.05)
        second = await enqueue_photo(storage, fer_face(), chat_id=902)
        reply = await emulator.wait_for(902, timeout=30)
        rows = await _wait_status(storage.sessions, [first, second])
    assert reply.text is not None and reply.text.startswith("😮 удивлённый")
    assert [r.model_version for r in rows] == [None, model.version]


async def test_three_workers_answer_300_requests_exactly_once(
    worker_settings: Settings, storage: Storage, botapi: API
) -> None:
    emulator, _ = botapi
    _, key = await storage.blobs.put_content(fer_face())
    async with storage.sessions.begin() as session:
        from db import queue

        ids = [
            (
                await queue.enqueue(
                    session, chat_id=10_000 + i, user_id=None, message_id=i, blob_key=key
                )
            ).id
            for i in range(300)
        ]
    settings = worker_settings.model_copy(update={"batch_size": 16})
    from runtime.telegram import make_client

    bots = [make_client(settings) for _ in range(3)]
    workers = [Worker(settings, storage, b, name=f"w{i}") for i, b in enumerate(bots)]
    try:
        async with running(*workers):
            rows = await _wait_status(storage.sessions, ids, within=40)
    finally:
        for b in bots:
            await b.session.close()

    assert {r.status for r in rows} == {"done"}
    assert all(r.attempts == 1 for r in rows)
    sent = Counter(c.chat_id for c in emulator.calls if c.is_message)
    assert sent == Counter({10_000 + i: 1 for i in range(300)})
    # All three took part, each claiming whole batches.
    assert sum(w.batches for w in workers) >= 300 // 16
    assert all(w.batches > 0 for w in workers)
    async with storage.sessions() as session:
        holders = dict(
            (
                await session.execute(
                    select(PredictionRequest.locked_by, func.count()).group_by(
                        PredictionRequest.locked_by
                    )
                )
            ).all()
        )
    assert set(holders) == {"w0", "w1", "w2"} and sum(holders.values()) == 300


async def test_stop_gives_back_requests_claimed_for_a_batch_not_started(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    # A long batch window: the worker holds the request while waiting for more.
    settings = worker_settings.model_copy(update={"batch_wait_ms": 30_000, "batch_size": 8})
    request = await enqueue_photo(storage, fer_face(), chat_id=990)
    worker = Worker(settings, storage, bot)
    async with running(worker):
        for _ in range(200):
            if (await _request(storage.sessions, request)).status == "processing":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the request was not claimed")
    row = await _request(storage.sessions, request)
    assert (row.status, row.attempts, row.locked_by, row.locked_until) == ("queued", 0, None, None)
    assert [c for c in emulator.calls if c.chat_id == 990] == []


async def test_a_telegram_outage_is_retried_from_the_stored_result(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    emulator._failures["sendmessage"] = [BotAPIError(502, "Bad Gateway")]
    request = await enqueue_photo(storage, fer_face(), chat_id=1101)
    async with running(Worker(worker_settings, storage, bot)):
        [row] = await _wait_status(storage.sessions, [request])
    assert row.status == "done" and row.attempts == 2
    assert "send failed" in row.error  # the first attempt's reason is kept
    # The second attempt answered from the result the first one stored: no second model run.
    assert row.timings["batch"] == 1 and row.result["faces"][0]["probs"][1] == 0.97
    assert len([c for c in emulator.calls if c.chat_id == 1101]) == 1


async def test_a_request_that_keeps_failing_gets_an_apology_and_fails(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    request = await enqueue_photo(storage, fer_face(), chat_id=1201)
    # Workers died on it `max_attempts` times: its lease ran out again.
    async with storage.sessions.begin() as session:
        row = await session.get(PredictionRequest, request)
        assert row is not None
        row.status, row.attempts = "processing", worker_settings.max_attempts
        row.locked_until, row.locked_by = func.now() - text("interval '1 second'"), "dead"
    async with running(Worker(worker_settings, storage, bot)):
        [row] = await _wait_status(storage.sessions, [request])
        reply = await emulator.wait_for(1201, timeout=30)
    assert reply.text == t("ru", "worker.gave_up")
    assert row.status == "failed" and row.replied_at is not None
    assert row.error == f"gave up after {worker_settings.max_attempts} attempts"
    assert row.result is None  # the photo was not processed again


async def test_an_idle_worker_wakes_on_notify_not_on_its_poll(
    worker_settings: Settings, storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    worker = Worker(worker_settings.model_copy(update={"poll_seconds": 600}), storage, bot)
    async with running(worker):
        for _ in range(500):  # LISTENing, then idle for ten minutes
            if worker._listener is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        await enqueue_photo(storage, fer_face(), chat_id=1301)
        # Well before the poll: only the NOTIFY can have woken it.
        await emulator.wait_for(1301, timeout=20)
