"""The platform end to end: its processes as separate OS processes started with the `emobot`
console script, against the fake Bot API, the test PostgreSQL database and moto S3.

Requests enter the queue the way the bot's predict service puts them there (photo in the blob
store, a `prediction_requests` row); the bot process joins these tests once `emobot bot` exists.
"""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue
from db.blobs import S3BlobStore
from db.models import PredictionRequest, User
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from worker import texts

EMOBOT = str(Path(sys.executable).with_name("emobot"))
PHOTOS = Path(__file__).parents[1] / "data" / "faces"
TOKEN = "77:e2e"


class Processes:
    """Platform processes started with the console script; all are ended at teardown."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen([EMOBOT, *args], env=self.env, stdout=log, stderr=log)
        self.running.append(process)
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EMOBOT, *args], env=self.env, capture_output=True, text=True, timeout=180
        )

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def botapi() -> AsyncIterator[tuple[BotAPIEmulator, BotAPIServer]]:
    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:
        yield emulator, server


@pytest.fixture
def processes(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> Iterator[Processes]:
    _, server = botapi
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "BLOB_STORE_URL": settings.blob_store_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "ADMIN_IDS": "1000",
        "DATA_DIR": str(tmp_path / "var"),
        "BATCH_WAIT_MS": "20",
        # A killed worker's batch is claimed again after its lease, which must outlast a batch
        # (8 photos take about 3 s of face detection on 2 busy cores).
        "BATCH_SIZE": "8",
        "LEASE_SECONDS": "20",
        "POLL_SECONDS": "1",
    }
    procs = Processes(env, tmp_path)
    prepared = procs.run("run", "--prepare-only")  # migrations + the shipped model, active
    assert prepared.returncode == 0, prepared.stderr
    yield procs
    procs.stop_all()


async def _enqueue(
    sessions: async_sessionmaker[AsyncSession], blobs: S3BlobStore, chat_id: int, photo: bytes
) -> None:
    """What the bot does with a photo to predict: store it, queue a request."""
    _, key = await blobs.put_content(photo, content_type="image/jpeg")
    async with sessions.begin() as session:
        await session.merge(User(id=chat_id, first_name=f"user{chat_id}", telegram_language="en"))
        await session.flush()
        await queue.enqueue(session, chat_id=chat_id, user_id=chat_id, message_id=1, blob_key=key)


async def test_worker_processes_answer_everything_once_when_one_is_sigkilled_under_load(
    processes: Processes,
    sessions: async_sessionmaker[AsyncSession],
    s3_store: S3BlobStore,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
) -> None:
    emulator, _ = botapi
    one_face = (PHOTOS / "astronaut.jpg").read_bytes()
    three_faces = (PHOTOS / "three_faces.jpg").read_bytes()
    chats = list(range(5000, 5040))
    for chat_id in chats:
        await _enqueue(sessions, s3_store, chat_id, three_faces if chat_id % 4 == 0 else one_face)

    victim = processes.start("worker")
    processes.start("worker")
    # Kill one worker as soon as the first answers arrive: it holds a batch in hand.
    await emulator.wait_for(chats[0], timeout=120)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    async with asyncio.timeout(180):
        while True:
            async with sessions() as session:
                open_requests = await queue.depth(session)
            if open_requests == 0:
                break
            await asyncio.sleep(0.5)

    answers = {
        chat: [c for c in emulator.calls if c.chat_id == chat and c.is_message] for chat in chats
    }
    # Nothing is lost with the killed worker. Delivery is at least once: replies the victim had
    # sent but not yet recorded when it died are sent again, at most its batch in hand.
    assert all(answers.values()), [chat for chat, calls in answers.items() if not calls]
    repeated = sum(len(calls) - 1 for calls in answers.values())
    assert repeated <= 8, repeated
    async with sessions() as session:
        statuses = dict(
            (await session.execute(
                select(PredictionRequest.status, func.count()).group_by(PredictionRequest.status)
            )).all()
        )  # fmt: skip
        by_chat = select(PredictionRequest.chat_id, PredictionRequest.result)
        results = dict((await session.execute(by_chat)).all())
    assert statuses == {"done": len(chats)}
    # Every chat gets the answer to its own photo: an annotated picture for three faces, a
    # message for one, showing the probabilities stored for that chat's request. (A detector
    # shared by the worker's threads once swapped faces between the photos of a batch.)
    for chat, calls in answers.items():
        faces = [f["probs"] for f in results[chat]["faces"]]
        assert len(faces) == (3 if chat % 4 == 0 else 1), (chat, results[chat])
        if chat % 4 == 0:
            expected = ("sendPhoto", texts.several_faces(faces, "en"))
        else:
            expected = ("sendMessage", texts.one_face(faces[0], "en"))
        assert all((c.method, c.text) == expected for c in calls), (chat, calls)
        assert all(c.method != "sendPhoto" or c.files["photo"] for c in calls)
