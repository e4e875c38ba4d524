"""Telegram's flood control for one chat holds up that chat only: the worker puts its answers
back in the queue until the wait is over, goes on with everybody else, and answers the chat
once when it may."""

import asyncio
from collections import Counter

from sqlalchemy import select

from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.botclient import BotClient
from tests.conftest import fer_face
from tests.worker.conftest import enqueue_key, photo, running
from worker.replies import Reply, send_reply
from worker.service import Worker

FLOODED = 60_001
OTHERS = range(60_010, 60_020)
WAIT_S = 5


async def test_a_flood_wait_delays_only_its_chat_and_its_answers_come_once_after_it(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
) -> None:
    emulator, _ = botapi
    loop = asyncio.get_running_loop()
    _, key = await storage.blobs.put_content(fer_face())

    async def enqueue(chat: int) -> int:
        return await enqueue_key(storage.sessions, key, chat_id=chat, language="en")

    def answers(chat: int) -> list[int]:
        return [c.seq for c in emulator.calls if c.is_message and c.chat_id == chat]

    emulator.flood(FLOODED, retry_after=WAIT_S)
    flooded = [await enqueue(FLOODED) for _ in range(3)]
    first = [await enqueue(chat) for chat in OTHERS[:5]]  # in the same batch
    async with running(Worker(worker_settings, storage, bot)):
        async with asyncio.timeout(30):
            while not emulator.flood_refusals or not all(answers(c) for c in OTHERS[:5]):
                await emulator._wait_change(1.0)
        refused_at = loop.time()
        # Photos sent while the chat waits: answered as fast as ever, in later batches.
        later = [await enqueue(chat) for chat in OTHERS[5:]]
        async with asyncio.timeout(30):
            while not all(answers(c) for c in OTHERS):
                await emulator._wait_change(1.0)
        others_done = loop.time() - refused_at
        assert answers(FLOODED) == []  # still waiting
        async with asyncio.timeout(30):
            while len(answers(FLOODED)) < len(flooded):
                await emulator._wait_change(1.0)
        flooded_done = loop.time() - refused_at
        await asyncio.sleep(1)  # nothing more comes
    print(
        f"others answered {others_done:.2f} s after the 429, the flooded chat {flooded_done:.2f} s"
    )

    sent = Counter(c.chat_id for c in emulator.calls if c.is_message)
    assert sent == Counter({FLOODED: len(flooded), **dict.fromkeys(OTHERS, 1)})
    # The flooded chat was knocked at once (every send of that batch at the same time), then
    # left alone until its wait was over.
    refused = [chat for chat, _ in emulator.flood_refusals]
    assert set(refused) == {FLOODED} and len(refused) <= len(flooded)
    async with storage.sessions() as session:
        rows = {
            r.id: r
            for r in await session.scalars(
                select(PredictionRequest).where(
                    PredictionRequest.id.in_([*flooded, *first, *later])
                )
            )
        }
    assert {r.status for r in rows.values()} == {"done"}
    assert {rows[i].attempts for i in first + later} == {1}
    # A send refused by flood control counts as an attempt; one deferred untried does not.
    assert {rows[i].attempts for i in flooded} <= {1, 2}
    assert all("flood control" in (rows[i].error or "") for i in flooded)


async def test_a_picture_is_not_sent_twice_when_the_long_text_after_it_is_refused(
    bot: BotClient, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    """A caption too long for the picture goes in a message of its own; flood control refusing
    that one must not make the whole answer (the picture) go out again later."""
    emulator, _ = botapi
    emulator.fail_next("sendMessage", retry_after=5)
    picture = Reply("many faces\n" * 150, photo=photo("three_faces.jpg"))
    await send_reply(bot, 60_100, None, picture)  # no Flooded: the answer counts as sent
    assert [c.method for c in emulator.calls if c.chat_id == 60_100] == ["sendPhoto"]
