"""The bot and its database connections: one pooled connection per update at most, no
transaction open through slow work, updates kept through a database outage, and an album's
photos arriving at two replicas at once."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.services.contribute
import bot.services.predict
from bot.app import build_bot, build_dispatcher
from db.blobs import S3BlobStore
from db.engine import Storage, make_engine, make_sessionmaker
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall, FakeUser
from tests.bot.conftest import BotHarness, Photos, running_harness, text_has
from tests.bot.test_contribute import accept, finish, open_batch


@contextlib.asynccontextmanager
async def small_pool(
    url: str, blobs: S3BlobStore, size: int, wait: float = 5
) -> AsyncIterator[Storage]:
    """A Storage over an engine of its own with `size` connections and no overflow."""
    engine = make_engine(url, pool_size=size, max_overflow=0, pool_timeout=wait)
    try:
        yield Storage(engine, make_sessionmaker(engine), blobs)
    finally:
        await engine.dispose()


def no_errors(harness: BotHarness, *users: FakeUser) -> None:
    apologies = [
        c
        for u in users
        for c in harness.emulator.calls_in(u.id, after=0)
        if "something went wrong" in (c.text or "")
    ]
    assert not apologies, apologies


async def test_a_pool_of_one_connection_serves_several_people_mid_dialog(
    database_url: str, sessions: object, s3_store: S3BlobStore, settings: Settings, photos: Photos
) -> None:
    settings = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    async with (
        small_pool(database_url, s3_store, 1, wait=3) as storage,
        running_harness(storage, settings) as harness,
    ):
        users = [harness.user(300 + i, f"U{i}", "en") for i in range(4)]
        await asyncio.gather(*(open_batch(harness, u) for u in users))
        for user, photo in zip(users, photos.variants, strict=True):
            user.send_photo(photo)
        await asyncio.gather(*(accept(harness, u, 1) for u in users))
        texts = await asyncio.gather(*(finish(harness, u) for u in users))
        assert all("Photos saved: 1" in text for text in texts), texts
        no_errors(harness, *users)
        assert len(await harness.samples()) == 4


async def test_no_transaction_is_open_during_downloads_detection_and_uploads(
    harness: BotHarness,
    database_url: str,
    photos: Photos,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_stat_activity, looked at from outside while each slow step runs, shows no session of
    the test database idle in a transaction."""
    url = urlparse(database_url)
    observer = await asyncpg.connect(
        host=url.hostname, port=url.port, user=url.username, database=url.path.lstrip("/")
    )
    loop = asyncio.get_running_loop()
    seen: dict[str, list[int]] = {}

    async def idle_in_transaction(step: str) -> None:
        count = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        seen.setdefault(step, []).append(count)

    def watched(step: str, slow: Callable[..., Any]) -> Callable[..., Any]:
        async def run(*args: Any, **kwargs: Any) -> Any:
            result = await slow(*args, **kwargs)
            await idle_in_transaction(step)  # after the bytes came: mid-step for the handler
            return result

        return run

    find_one_face = bot.services.contribute.find_one_face

    def detect(*args: Any) -> Any:  # in a worker thread
        asyncio.run_coroutine_threadsafe(idle_in_transaction("detect"), loop).result()
        return find_one_face(*args)

    monkeypatch.setattr(bot.services.contribute, "find_one_face", detect)
    for module in (bot.services.contribute, bot.services.predict):
        monkeypatch.setattr(module, "download", watched("download", module.download))
    blobs = harness.storage.blobs
    monkeypatch.setattr(blobs, "put", watched("upload", blobs.put))
    try:
        user = harness.user(310, "Tx", "en")
        await open_batch(harness, user)
        user.send_photo(photos.one_face)
        await accept(harness, user, 1)
        assert "Photos saved: 1" in await finish(harness, user)
        user.send_photo(photos.variants[0])  # outside a dialog: a prediction request
        await harness.reply(user, text_has("working on it"))
    finally:
        await observer.close()
    # a download to check, one to save, one for the prediction; an upload for each save
    assert len(seen["download"]) == 3 and len(seen["upload"]) == 2 and seen["detect"], seen
    assert all(count == 0 for counts in seen.values() for count in counts), seen


class Proxy:
    """A TCP proxy in front of PostgreSQL that can play an outage: `cut()` drops every
    connection and refuses new ones until `restore()`."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.up = True
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "Proxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@contextlib.asynccontextmanager
async def behind_proxy(
    database_url: str, s3_store: S3BlobStore, settings: Settings
) -> AsyncIterator[tuple[Proxy, BotHarness]]:
    url = urlparse(database_url)
    async with Proxy(url.port or 5432) as proxy:
        proxied = database_url.replace(f":{url.port}/", f":{proxy.port}/", 1)
        async with (
            small_pool(proxied, s3_store, 3) as storage,
            running_harness(storage, settings.model_copy(update={"db_pool_size": 3})) as harness,
        ):
            yield proxy, harness


async def test_updates_sent_while_the_database_is_down_are_answered_once_it_is_back(
    database_url: str, sessions: object, s3_store: S3BlobStore, settings: Settings, photos: Photos
) -> None:
    settings = settings.model_copy(update={"db_outage_retry_seconds": 60})
    async with behind_proxy(database_url, s3_store, settings) as (proxy, harness):
        ann, bob = harness.user(320, "Ann", "en"), harness.user(321, "Bob", "en")
        ann.send_text("/start")
        await harness.reply(ann, text_has("I recognise emotions"))

        def messages(user: FakeUser) -> list[BotCall]:
            return [c for c in harness.emulator.calls_in(user.id, after=0) if c.is_message]

        before = {u.id: len(messages(u)) for u in (ann, bob)}

        proxy.cut()
        ann.send_text("/start")
        bob.send_photo(photos.one_face)
        await asyncio.sleep(4)  # retried meanwhile; nothing is answered yet, not even an error
        assert all(len(messages(u)) == before[u.id] for u in (ann, bob)), [
            messages(u) for u in (ann, bob)
        ]
        proxy.restore()

        await harness.reply(ann, text_has("I recognise emotions"), seconds=20)
        await harness.reply(bob, text_has("working on it"), seconds=20)
        await asyncio.sleep(1.5)  # time for a second answer, if there were one
        for user, expected in ((ann, "I recognise emotions"), (bob, "working on it")):
            new = messages(user)[before[user.id] :]
            assert [expected in (c.text or "") for c in new] == [True], new
        no_errors(harness, ann, bob)


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "briefly unavailable"), ("ru", "ненадолго недоступен")]
)
async def test_an_update_kept_past_the_retry_limit_is_asked_again_in_a_reply(
    database_url: str,
    sessions: object,
    s3_store: S3BlobStore,
    settings: Settings,
    language: str,
    expected: str,
) -> None:
    settings = settings.model_copy(update={"db_outage_retry_seconds": 1.5})
    async with behind_proxy(database_url, s3_store, settings) as (proxy, harness):
        user = harness.user(330, "Cy", language)
        proxy.cut()
        message = user.send_text("/start")
        answer = await harness.reply(user, seconds=20)
        proxy.restore()
        assert expected in (answer.text or ""), answer
        assert answer.params["reply_parameters"]["message_id"] == message["message_id"]
        no_errors(harness, user)


async def _feed(dispatcher: Dispatcher, bot: Bot, update: dict[str, Any]) -> None:
    await dispatcher.feed_update(bot, Update.model_validate(update, context={"bot": bot}))


async def test_an_album_split_between_two_replicas_keeps_every_photo(
    database_url: str,
    sessions: object,
    s3_store: S3BlobStore,
    settings: Settings,
    photos: Photos,
    engine: AsyncEngine,
) -> None:
    """Two replicas (an engine, a Bot and a Dispatcher each) get the photos of one album
    alternately and at once; aiogram's per-user lock is per process, so only the database
    keeps them from overwriting each other's pending photo."""
    emulator = BotAPIEmulator()
    async with (
        BotAPIServer(emulator) as server,
        small_pool(database_url, s3_store, 3) as first,
        small_pool(database_url, s3_store, 3) as second,
    ):
        replica_settings = settings.model_copy(update={"telegram_api_url": server.url})
        replicas = [
            (build_dispatcher(storage, replica_settings), build_bot(replica_settings))
            for storage in (first, second)
        ]
        harness = BotHarness(emulator, server, first, settings)  # for its helpers only
        user = harness.user(340, "Al", "en")

        async def deliver(replica: int = 0) -> None:
            while emulator.updates:
                dispatcher, bot = replicas[replica]
                await _feed(dispatcher, bot, emulator.updates.pop(0))

        try:
            user.send_text("/contribute")
            await deliver()
            user.press(await harness.reply(user), data="consent:1")
            await deliver(1)
            user.press(await harness.reply(user, text_has("Choose")), data="label:happy")
            await deliver()
            await harness.reply(user, text_has("Class: happy"))

            user.send_album(photos.variants)
            album, emulator.updates[:] = list(emulator.updates), []
            await asyncio.gather(
                *(_feed(*replicas[i % 2], update) for i, update in enumerate(album))
            )
            await accept(harness, user, len(album))
            offers = [c for c in emulator.calls_in(user.id) if c.buttons]
            user.press(offers[-1], data="batch:done")
            await deliver(1)
            summary = await harness.reply(user, lambda c: c.is_message and len(c.buttons) == 2)
            assert f"{len(album)} photo" in (summary.text or ""), summary
            user.press(summary, data="batch:save")
            await deliver()
            saved = await harness.reply(user, lambda c: c.method == "editMessageText")
            assert f"Photos saved: {len(album)}" in (saved.text or ""), saved
            assert len(await harness.samples()) == len(album)
        finally:
            for _, bot in replicas:
                await bot.session.close()
