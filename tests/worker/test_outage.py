"""PostgreSQL goes away in the middle of a burst (a restart, a failover): the workers pause,
answer nobody with an error, count no attempt, and carry on once it is back."""

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from db.engine import Storage, make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.telegram import make_client
from tests.conftest import fer_face
from tests.worker.conftest import enqueue_key, running, start_worker_process, wait_until
from tests.worker.tcpproxy import TcpProxy
from tests.worker.test_operations import embedded_postgres
from worker.replies import compose_reply
from worker.service import Worker

USERS = range(40_001, 40_007)
PHOTOS = 60
OUTAGE_S = 5.0  # longer than the test's LEASE_SECONDS (2): every lease runs out meanwhile


async def test_a_database_outage_mid_burst_loses_nothing_and_answers_nobody_with_an_error(
    worker_settings: Settings,
    storage: Storage,
    database_url: str,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
) -> None:
    emulator, _ = botapi
    settings = worker_settings.model_copy(update={"batch_size": 4})
    _, key = await storage.blobs.put_content(fer_face())
    ids = [
        await enqueue_key(
            storage.sessions,
            key,
            chat_id=USERS[i % len(USERS)],
            message_id=1000 + i,
            language="en",
        )
        for i in range(PHOTOS)
    ]

    def answers() -> list[str | None]:
        return [c.text for c in emulator.calls if c.is_message and c.chat_id in USERS]

    async def answered(enough: Callable[[int], bool]) -> None:
        async with asyncio.timeout(60):
            while not enough(len(answers())):
                await emulator._wait_change(1.0)

    loop = asyncio.get_running_loop()
    async with TcpProxy.before(database_url) as proxy:
        # The workers reach PostgreSQL through the proxy; the test itself directly.
        engine = make_engine(proxy.url(database_url))
        through_proxy = Storage(engine, make_sessionmaker(engine), storage.blobs)
        bots = [make_client(settings) for _ in range(2)]
        workers = [Worker(settings, through_proxy, b, name=f"w{i}") for i, b in enumerate(bots)]
        try:
            async with running(*workers):
                await answered(lambda n: n >= PHOTOS // 4)
                # Replies on their way when PostgreSQL goes: they reach the users during the
                # outage, and are recorded after it (or they would be sent again).
                emulator.stall(USERS)
                await asyncio.sleep(0.3)
                await proxy.cut()
                cut_at = len(answers())
                await asyncio.sleep(1)
                emulator.unstall()
                await asyncio.sleep(OUTAGE_S - 1)
                during = len(answers()) - cut_at
                await proxy.restore()
                restored = loop.time()
                await answered(lambda n: n > cut_at + during)
                first_after = loop.time() - restored
                async with asyncio.timeout(60):
                    while True:
                        async with storage.sessions() as session:
                            rows = list(
                                await session.scalars(
                                    select(PredictionRequest).where(PredictionRequest.id.in_(ids))
                                )
                            )
                        if all(r.status in ("done", "failed") for r in rows):
                            break
                        await asyncio.sleep(0.05)
        finally:
            for b in bots:
                await b.session.close()
            await engine.dispose()

    print(f"{cut_at} before the outage, {during} during it, the next {first_after:.2f} s after")
    assert all(w.database.outages >= 1 for w in workers)
    assert during > 0
    # Everyone answered once, each with the answer to their photo: no apology, no error.
    sent = Counter(c.chat_id for c in emulator.calls if c.is_message and c.chat_id in USERS)
    assert sent == Counter(dict.fromkeys(USERS, PHOTOS // len(USERS)))
    expected = compose_reply(rows[0].result, None, "en", settings.unsure_below).text
    assert set(answers()) == {expected}
    # Not a single attempt was counted for the outage.
    assert {(r.status, r.attempts, r.error) for r in rows} == {("done", 1, None)}
    assert all(r.replied_at is not None for r in rows)


async def test_a_worker_process_pauses_while_its_postgresql_restarts(
    worker_settings: Settings,
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    """`python -m cli worker` on an embedded PostgreSQL that is stopped mid-burst and started again
    5 s later: every photo answered once, with its answer, no attempt counted."""
    emulator, _ = botapi
    chats = range(41_001, 41_005)
    photos = 32
    pgdata = tmp_path / "pg"
    url = await embedded_postgres(pgdata, "start")
    try:
        engine = make_engine(url)
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        _, key = await storage.blobs.put_content(fer_face())
        ids = [
            await enqueue_key(sessions, key, chat_id=chats[i % len(chats)], language="en")
            for i in range(photos)
        ]
        await engine.dispose()

        def answers() -> list[str | None]:
            return [c.text for c in emulator.calls if c.is_message and c.chat_id in chats]

        process = await start_worker_process(
            worker_settings, DATABASE_URL=url, BATCH_SIZE=2, BATCH_WAIT_MS=0
        )
        try:

            async def some_answered() -> bool:
                return len(answers()) >= 4

            await wait_until(some_answered, process, within=90)
            # The batch in hand waits on Telegram while PostgreSQL stops, so the outage comes
            # mid-burst; its replies go out during the outage.
            emulator.stall(chats)
            await embedded_postgres(pgdata, "stop")
            emulator.unstall()
            await asyncio.sleep(OUTAGE_S)
            assert await embedded_postgres(pgdata, "start") == url
            started, before = asyncio.get_running_loop().time(), len(answers())

            async def answering_again() -> bool:
                return len(answers()) > before

            await wait_until(answering_again, process, within=60)
            first_after = asyncio.get_running_loop().time() - started

            async def all_answered() -> bool:
                return len(answers()) >= photos

            await wait_until(all_answered, process, within=60)
            await asyncio.sleep(1)  # nothing more comes
        finally:
            process.send_signal(signal.SIGTERM)
            output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            rows = list(
                await session.scalars(
                    select(PredictionRequest).where(PredictionRequest.id.in_(ids))
                )
            )
        await engine.dispose()
    finally:
        await embedded_postgres(pgdata, "stop")

    print(f"the first answer {first_after:.2f} s after PostgreSQL was started again")
    assert "database unreachable" in output and "database back after" in output
    assert before < photos
    sent = Counter(c.chat_id for c in emulator.calls if c.is_message and c.chat_id in chats)
    assert sent == Counter(dict.fromkeys(chats, photos // len(chats)))
    expected = compose_reply(rows[0].result, None, "en", worker_settings.unsure_below).text
    assert set(answers()) == {expected}
    assert {(r.status, r.attempts) for r in rows} == {("done", 1)}
