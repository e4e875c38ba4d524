"""Clips in the durable queue: answered once after a worker is killed mid-clip, and never
holding up the photos that arrive while one is read."""

import asyncio

from aiogram import Bot
from sqlalchemy import select

from db import queue
from db.engine import Storage
from db.erasure import forget
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.clips import make_clip
from tests.worker.conftest import enqueue_photo, photo, running, start_worker_process, wait_until
from worker.service import Worker

API = tuple[BotAPIEmulator, BotAPIServer]


async def enqueue_clip(storage: Storage, data: bytes, chat_id: int) -> int:
    _, key = await storage.blobs.put_content(data)
    async with storage.sessions.begin() as session:
        request = await queue.enqueue(
            session,
            chat_id=chat_id,
            user_id=None,
            message_id=None,
            blob_key=key,
            language="en",
            kind="video",
        )
        return request.id


async def row(storage: Storage, request_id: int) -> PredictionRequest:
    async with storage.sessions() as session:
        found = await session.scalar(
            select(PredictionRequest).where(PredictionRequest.id == request_id)
        )
        assert found is not None
        return found


async def test_a_clip_is_answered_once_after_its_worker_is_killed(
    storage: Storage, worker_settings: Settings, botapi: API, bot: Bot
) -> None:
    emulator, _ = botapi
    clip = make_clip(["happy", "neutral"] * 15, kind="note", size=(320, 320), fps=5)
    request_id = await enqueue_clip(storage, clip, chat_id=8101)
    process = await start_worker_process(worker_settings)

    async def claimed() -> bool:
        return (await row(storage, request_id)).status == "processing"

    await wait_until(claimed, process, within=60)
    process.kill()  # mid-analysis: nothing stored, nothing sent
    await process.wait()
    assert (await row(storage, request_id)).result is None
    worker = Worker(worker_settings, storage, bot)
    async with running(worker):
        await emulator.wait_for(8101, lambda c: c.method == "sendPhoto", timeout=60)
        await asyncio.sleep(worker_settings.lease_seconds + 0.5)  # room for a second answer
    answers = [c for c in emulator.calls_in(8101, after=0) if c.is_message]
    assert [c.method for c in answers] == ["sendPhoto"]
    answered = await row(storage, request_id)
    assert answered.status == "done" and answered.attempts == 2


async def test_photos_are_answered_while_a_long_clip_is_read_and_forget_erases_it(
    storage: Storage, worker_settings: Settings, botapi: API, bot: Bot
) -> None:
    emulator, _ = botapi
    clip = make_clip(["happy", "neutral"] * 30, kind="note", size=(256, 256), fps=5)
    worker = Worker(worker_settings, storage, bot)
    async with running(worker):
        clip_id = await enqueue_clip(storage, clip, chat_id=8201)
        async with asyncio.timeout(30):
            while (await row(storage, clip_id)).status != "processing":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=8202, user_id=None)
        answered_photo = await emulator.wait_for(8202, timeout=60)
        answered_clip = await emulator.wait_for(8201, timeout=120)
    # The photo, sent after the clip was claimed, was answered before the clip.
    assert answered_photo.seq < answered_clip.seq
    assert answered_clip.method == "sendPhoto"
    async with storage.sessions() as session:
        erased = await forget(session, storage.blobs, 8201)
    assert erased.predictions == 1
    async with storage.sessions() as session:
        left = await session.scalars(
            select(PredictionRequest.kind).where(PredictionRequest.chat_id == 8201)
        )
        assert list(left) == []
