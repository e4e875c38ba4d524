"""Workers as OS processes (`python -m cli worker`): killed mid-batch, or stopped by SIGTERM."""

import asyncio
import signal
from collections import Counter

from sqlalchemy import func, select

from db import queue
from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.telegram import make_client
from tests.conftest import fer_face
from tests.worker.conftest import running, start_worker_process, wait_until
from worker.service import Worker


async def _enqueue_many(storage: Storage, chats: range) -> list[int]:
    _, key = await storage.blobs.put_content(fer_face())
    async with storage.sessions.begin() as session:
        return [
            (
                await queue.enqueue(session, chat_id=chat, user_id=None, message_id=1, blob_key=key)
            ).id
            for chat in chats
        ]


async def _count(storage: Storage, status: str) -> int:
    async with storage.sessions() as session:
        statement = select(func.count()).where(PredictionRequest.status == status)
        return await session.scalar(statement) or 0


async def test_a_worker_killed_mid_batch_loses_nothing_and_answers_nothing_twice(
    worker_settings: Settings, storage: Storage, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, _ = botapi
    loop = asyncio.get_running_loop()
    chats = range(20_000, 20_100)
    ids = await _enqueue_many(storage, chats)
    # The victim (the default lease) claims a batch of 50; 30 replies go out, 20 hang (a slow
    # Telegram), and while they hang it is killed. Two workers answer the other 50 meanwhile,
    # then wait for the victim's.
    emulator.stall(chats[30:50])
    victim = await start_worker_process(
        worker_settings, BATCH_SIZE=50, LEASE_SECONDS=Settings.model_fields["lease_seconds"].default
    )

    async def mid_batch() -> bool:
        return await _count(storage, "done") == 30

    await wait_until(mid_batch, victim, within=60)
    bots = [make_client(worker_settings) for _ in range(2)]
    survivors = [Worker(worker_settings, storage, b, name=f"s{i}") for i, b in enumerate(bots)]
    try:
        async with running(*survivors):

            async def the_rest_answered() -> bool:
                return await _count(storage, "done") == 80

            await wait_until(the_rest_answered, victim, within=60)
            async with storage.sessions() as session:
                held = dict(
                    (
                        await session.execute(
                            select(PredictionRequest.id, PredictionRequest.locked_by).where(
                                PredictionRequest.status == "processing"
                            )
                        )
                    ).all()
                )
            assert len(held) == 20 and len(set(held.values()) & {"s0", "s1"}) == 0
            victim.kill()  # SIGKILL
            killed_at = loop.time()
            await victim.wait()
            emulator.unstall(deliver=False)  # what hung never reached anyone
            async with asyncio.timeout(30):
                while not any(c.is_message and c.chat_id in chats[30:50] for c in emulator.calls):
                    await emulator._wait_change(1.0)
            recovery = loop.time() - killed_at
            async with asyncio.timeout(30):
                while await _count(storage, "done") < 100:  # noqa: ASYNC110 - rows send no events
                    await asyncio.sleep(0.05)
    finally:
        for b in bots:
            await b.session.close()
    print(f"the killed worker's requests answered again {recovery:.2f} s after the kill")

    sent = Counter(c.chat_id for c in emulator.calls if c.is_message)
    assert sent == Counter(dict.fromkeys(chats, 1))
    async with storage.sessions() as session:
        rows = {
            r.id: r
            for r in await session.scalars(
                select(PredictionRequest).where(PredictionRequest.id.in_(ids))
            )
        }
    assert {r.status for r in rows.values()} == {"done"}
    for request_id in held:
        # Taken over after the lease, answered from the result the victim had stored.
        row = rows[request_id]
        assert row.attempts == 2 and row.locked_by in ("s0", "s1")
        assert row.timings["batch"] == 50


async def test_sigterm_finishes_the_batch_in_hand_then_exits(
    worker_settings: Settings, storage: Storage, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, _ = botapi
    chats = range(30_000, 30_010)
    await _enqueue_many(storage, chats)
    emulator.stall(chats[7:])  # three replies hang (a slow Telegram) when SIGTERM comes
    process = await start_worker_process(worker_settings, BATCH_SIZE=10)

    async def mid_batch() -> bool:
        return await _count(storage, "done") == 7

    await wait_until(mid_batch, process, within=60)
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    emulator.unstall()
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    assert await _count(storage, "done") == 10
    sent = Counter(c.chat_id for c in emulator.calls if c.is_message)
    assert sent == Counter(dict.fromkeys(chats, 1))
    log = output.decode()
    assert "batch 1: 10 requests, 10 faces" in log and "stopped" in log
