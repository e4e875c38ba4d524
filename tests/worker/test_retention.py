"""Photos sent for prediction are not kept: the worker's purge, against both blob stores."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import retention
from db.blob_refs import put_photo
from db.blobs import BlobStore
from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.botclient import BotClient
from tests.conftest import fer_face
from tests.worker.conftest import enqueue_photo, running
from worker.service import Worker

API = tuple[BotAPIEmulator, BotAPIServer]


@pytest.fixture
def any_storage(engine: AsyncEngine, storage: Storage, blob_store: BlobStore) -> Storage:
    """The test database with the local folder, then moto's S3."""
    return Storage(engine, storage.sessions, blob_store)


async def row(storage: Storage, request_id: int) -> PredictionRequest:
    async with storage.sessions() as session:
        found = await session.get(PredictionRequest, request_id)
        assert found is not None
        return found


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 - rows and blobs send no events
            await asyncio.sleep(0.05)


async def test_with_no_retention_the_photo_goes_once_answered(
    worker_settings: Settings, any_storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    storage = any_storage
    answered = await enqueue_photo(storage, fer_face(), chat_id=1401)
    unreadable = await enqueue_photo(storage, b"%PDF not a photo", chat_id=1402)
    assert len(await storage.blobs.list("images/")) == 2
    async with running(Worker(worker_settings, storage, bot)):
        await emulator.wait_for(1401, timeout=30)
        await emulator.wait_for(1402, timeout=30)
        # Soon after the answers, well before the periodic purge (PURGE_INTERVAL_SECONDS=60).
        await until(lambda: _purged(storage, answered, unreadable), seconds=10)
    assert await storage.blobs.list("images/") == []
    done, failed = await row(storage, answered), await row(storage, unreadable)
    assert done.status == "done" and failed.status == "failed"
    assert done.result is not None and len(done.result["faces"]) == 1  # the result stays


async def _purged(storage: Storage, *request_ids: int) -> bool:
    """Whether the purge let go of these requests' photos (the blobs go just before)."""
    rows = [await row(storage, i) for i in request_ids]
    return all(r.photo_deleted_at is not None for r in rows)


async def test_with_a_retention_the_photo_stays_until_the_purge_after_it(
    worker_settings: Settings, any_storage: Storage, bot: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    storage = any_storage
    settings = worker_settings.model_copy(
        update={"prediction_retention_hours": 1, "purge_interval_seconds": 0.2}
    )
    request = await enqueue_photo(storage, fer_face(), chat_id=1501)
    async with running(Worker(settings, storage, bot)):
        await emulator.wait_for(1501, timeout=30)
        await until(lambda: _finished(storage, request))
        await asyncio.sleep(1)  # several purge rounds: the photo is younger than an hour
        assert (await row(storage, request)).photo_deleted_at is None
        assert len(await storage.blobs.list("images/")) == 1
        # An hour later, as far as the purge can tell.
        async with storage.sessions.begin() as session:
            await session.execute(
                text("UPDATE prediction_requests SET finished_at = now() - interval '61 minutes'")
            )
        await until(lambda: _purged(storage, request))
    assert await storage.blobs.list("images/") == []


async def _finished(storage: Storage, request_id: int) -> bool:
    return (await row(storage, request_id)).status == "done"


async def test_the_worker_sweeps_a_photo_left_by_a_failed_insert(
    worker_settings: Settings,
    any_storage: Storage,
    bot: BotClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot stored a photo, then its INSERT failed: the worker's purge removes the blob once
    it is old enough (an hour; no time here), and leaves a queued request's photo alone."""
    storage = any_storage
    monkeypatch.setattr(retention, "ORPHAN_AGE_SECONDS", 0)
    async with storage.sessions() as failed_insert:
        _, orphan = await put_photo(failed_insert, storage.blobs, b"insert failed")
        await failed_insert.rollback()
    waiting = await enqueue_photo(storage, fer_face(), chat_id=1601)
    async with storage.sessions.begin() as session:  # a retry an hour away: not claimed
        await session.execute(
            text("UPDATE prediction_requests SET locked_until = now() + interval '1 hour'")
        )
    async with running(Worker(worker_settings, storage, bot)):
        await until(lambda: _gone(storage, orphan))
    assert await storage.blobs.list("images/") == [(await row(storage, waiting)).blob_key]


async def _gone(storage: Storage, key: str) -> bool:
    return not await storage.blobs.exists(key)
