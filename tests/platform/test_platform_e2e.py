"""The platform end to end through the real bot: `emobot bot` and `emobot worker` run as separate
OS processes (`python -m cli`) against the fake Bot API (served by this test process), the test
PostgreSQL database and moto S3. Users act only through the fake Bot API, as they would in
Telegram; the database is read to check what the processes stored.
"""

import asyncio
import io
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cli.importer import import_archive
from db import queue, registry
from db.blobs import sha256_hex
from db.engine import Storage
from db.models import PredictionRequest, Sample
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall, FakeUser
from tests.bot.conftest import different_faces
from tests.conftest import FIXTURE_ARCHIVE, child_env

FACES = Path(__file__).parents[1] / "data" / "faces"
TOKEN = "77:platform-e2e"
ADMIN = 1000


class Platform:
    """The fake Bot API plus the platform's processes, started with `python -m cli`."""

    def __init__(self, emulator: BotAPIEmulator, env: dict[str, str], logs: Path):
        self.emulator = emulator
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, command: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{command}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", command], env=self.env, stdout=log, stderr=log
        )
        self.running.append(process)
        return process

    async def start_bot(self) -> subprocess.Popen[bytes]:
        """Start `emobot bot` and wait until it is polling (its startup sets the command menus)."""
        self.emulator.commands.clear()
        process = self.start("bot")
        async with asyncio.timeout(60):
            while "default" not in self.emulator.commands:
                assert process.poll() is None, self.log_tail(process)
                await asyncio.sleep(0.1)
        return process

    def log_tail(self, process: subprocess.Popen[bytes]) -> str:
        index = self.running.index(process)
        [log] = self.logs.glob(f"*-{index}.log")
        return log.read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def platform(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> Iterator[Platform]:
    emulator, server = botapi
    env = {
        **child_env(settings),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "ADMIN_IDS": str(ADMIN),
        "DATA_DIR": str(tmp_path / "var"),
        "BATCH_WAIT_MS": "20",
        "BATCH_SIZE": "8",
        "POLL_SECONDS": "1",
        # The trainer's protocol evaluation runs on the small fixture archive's test split.
        "FER2013_ZIP": str(FIXTURE_ARCHIVE),
        "LOG_LEVEL": "INFO",
    }
    prepared = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--prepare-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert prepared.returncode == 0, prepared.stderr  # migrations + the shipped model, active
    platform = Platform(emulator, env, tmp_path)
    yield platform
    platform.stop_all()


def text_has(*parts: str) -> Callable[[BotCall], bool]:
    def accept(call: BotCall) -> bool:
        return call.method in ("sendMessage", "editMessageText") and all(
            p in (call.text or "") for p in parts
        )

    return accept


def is_answer(call: BotCall) -> bool:
    """The worker's answer to a photo: probabilities in a text, or an annotated picture."""
    return (call.method == "sendMessage" and "%" in (call.text or "")) or (
        call.method == "sendPhoto"
    )


async def open_batch(emulator: BotAPIEmulator, user: FakeUser, label: str) -> None:
    """/contribute → consent → class: the dialog waits for photos."""
    user.send_text("/contribute")
    consent = await emulator.wait_for(user.id, text_has("train the model"), 20)
    user.press(consent, text="I agree")
    choose = await emulator.wait_for(user.id, text_has("Choose a class"), 20)
    user.press(choose, data=f"label:{label}")
    await emulator.wait_for(user.id, text_has("Class:"), 20)


async def save_batch(emulator: BotAPIEmulator, user: FakeUser) -> str:
    offers = [c for c in emulator.calls_in(user.id, after=0) if c.buttons]
    user.press(offers[-1], data="batch:done")
    summary = await emulator.wait_for(user.id, lambda c: c.is_message and len(c.buttons) == 2, 20)
    user.press(summary, data="batch:save")
    saved = await emulator.wait_for(user.id, lambda c: c.method == "editMessageText", 20)
    return saved.text or ""


async def drained(sessions: async_sessionmaker[AsyncSession], seconds: float = 60) -> None:
    """Until no request is queued or in hand (a reply is recorded just after it is sent)."""
    async with asyncio.timeout(seconds):
        while True:
            async with sessions() as session:
                if await queue.depth(session) == 0:
                    return
            await asyncio.sleep(0.2)


def variants(count: int) -> list[bytes]:
    """One-face photos of different faces (copies of one face would be refused as such)."""
    return different_faces()[:count]


async def test_contribute_predict_and_export_through_the_bot_process(
    platform: Platform, sessions: async_sessionmaker[AsyncSession]
) -> None:
    emulator = platform.emulator
    await platform.start_bot()
    platform.start("worker")

    # A contributor sends an album of three photos of one class.
    album = variants(3)
    ann = emulator.user(20, "Ann", language_code="en")
    await open_batch(emulator, ann, "happy")
    ann.send_album(album)
    await emulator.wait_for(ann.id, text_has("(3 "), 30)
    assert "Photos saved: 3" in await save_batch(emulator, ann)
    async with sessions() as session:
        samples = list(await session.scalars(select(Sample).order_by(Sample.id)))
    assert sorted(s.sha256 for s in samples) == sorted(sha256_hex(p) for p in album)
    assert {(s.label, s.source, s.contributor_id) for s in samples} == {("happy", "telegram", 20)}

    # Another user predicts a one-face photo, then a three-face photo.
    bob = emulator.user(30, "Bob", language_code="en")
    bob.send_photo((FACES / "astronaut.jpg").read_bytes())
    one = await emulator.wait_for(bob.id, is_answer, 90)
    assert one.method == "sendMessage"
    lines = (one.text or "").splitlines()
    assert len(lines) == 2 and lines[1].count("%") == 4, one.text  # label, then all 4 classes
    bob.send_photo((FACES / "three_faces.jpg").read_bytes())
    three = await emulator.wait_for(bob.id, is_answer, 90)
    assert three.method == "sendPhoto" and three.files["photo"][:2] == b"\xff\xd8"
    assert "Faces in the photo: 3." in (three.text or ""), three.text
    assert len((three.text or "").splitlines()) == 4
    await drained(sessions)
    async with sessions() as session:
        active = await registry.active_model(session)
        done = list(await session.scalars(select(PredictionRequest).order_by(PredictionRequest.id)))
    assert active is not None
    assert [(r.chat_id, r.status, r.model_version) for r in done] == [
        (30, "done", active.version),
        (30, "done", active.version),
    ]
    assert [len(r.result["faces"]) for r in done] == [1, 3]

    # The admin exports the dataset: the album comes back as a zip.
    admin = emulator.user(ADMIN, "Admin", language_code="en")
    admin.send_text("/export")
    document = await emulator.wait_for(admin.id, lambda c: c.method == "sendDocument", 60)
    with zipfile.ZipFile(io.BytesIO(document.files["document"])) as archive:
        images = [n for n in archive.namelist() if n.startswith("train/happy/")]
        assert "manifest.csv" in archive.namelist()
    assert len(images) == 3


async def test_bot_process_restarted_mid_dialog_continues_it(
    platform: Platform, sessions: async_sessionmaker[AsyncSession]
) -> None:
    emulator = platform.emulator
    bot = await platform.start_bot()
    photos = variants(2)
    ann = emulator.user(21, "Ann", language_code="en")
    await open_batch(emulator, ann, "surprise")
    ann.send_photo(photos[0])
    await emulator.wait_for(ann.id, text_has("(1 "), 30)

    bot.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(bot.wait, 30) == 0, platform.log_tail(bot)
    await platform.start_bot()

    # The new process knows where the dialog was: the next photo joins the same batch.
    ann.send_photo(photos[1])
    await emulator.wait_for(ann.id, text_has("(2 "), 30)
    assert "Photos saved: 2" in await save_batch(emulator, ann)
    async with sessions() as session:
        samples = list(await session.scalars(select(Sample)))
    assert sorted(s.sha256 for s in samples) == sorted(sha256_hex(p) for p in photos)
    assert {s.label for s in samples} == {"surprise"}


async def test_worker_sigkilled_under_load_loses_no_request_sent_through_the_bot(
    platform: Platform, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Two workers (the default LEASE_SECONDS) share 24 queued photos; one is killed with
    SIGKILL while it holds a batch it has not answered. The survivor answers that batch within
    15 s of the kill, each photo exactly once."""
    emulator = platform.emulator
    await platform.start_bot()
    one_face = (FACES / "astronaut.jpg").read_bytes()
    three_faces = (FACES / "three_faces.jpg").read_bytes()
    users = [emulator.user(6000 + i, f"u{i}", language_code="en") for i in range(24)]
    for user in users:
        user.send_photo(three_faces if user.id % 4 == 0 else one_face)
    # Every photo is queued by the bot before the workers start: the load is all there.
    async with asyncio.timeout(90):
        while True:
            async with sessions() as session:
                if await queue.depth(session) == len(users):
                    break
            await asyncio.sleep(0.2)

    victim = platform.start("worker")
    platform.start("worker")
    # Killed while it holds requests whose results it has not saved: nothing of that batch can
    # have been sent (results are saved before replying), so none may be answered twice.
    async with asyncio.timeout(120):
        while not (orphans := await unsaved_claims(sessions, victim.pid)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await asyncio.to_thread(victim.wait)
    async with asyncio.timeout(120):
        while await still_open(sessions, orphans):  # noqa: ASYNC110 - a table
            await asyncio.sleep(0.1)
    recovery = time.monotonic() - killed
    print(f"{len(orphans)} requests of the killed worker answered {recovery:.1f} s after SIGKILL")

    async with asyncio.timeout(150):
        for user in users:
            await emulator.wait_for(user.id, is_answer, 150)
    answers = {u.id: [c for c in emulator.calls_in(u.id, after=0) if is_answer(c)] for u in users}
    # Each chat gets the answer to its own photo, once: a picture for three faces, a text for one.
    wrong = [
        uid
        for uid, calls in answers.items()
        if [c.method for c in calls] != ["sendPhoto" if uid % 4 == 0 else "sendMessage"]
    ]
    assert wrong == []
    assert recovery <= 15, f"the killed worker's requests took {recovery:.1f} s"
    await drained(sessions)
    async with sessions() as session:
        statuses = dict(
            (
                await session.execute(
                    select(PredictionRequest.status, func.count()).group_by(
                        PredictionRequest.status
                    )
                )
            ).all()
        )
    assert statuses == {"done": len(users)}


async def unsaved_claims(sessions: async_sessionmaker[AsyncSession], pid: int) -> list[int]:
    """Requests the worker process `pid` holds with no result saved yet."""
    async with sessions() as session:
        rows = await session.scalars(
            select(PredictionRequest.id).where(
                PredictionRequest.status == "processing",
                PredictionRequest.locked_by.like(f"%:{pid}:%"),
                PredictionRequest.result.is_(None),
            )
        )
        return list(rows)


async def still_open(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> bool:
    async with sessions() as session:
        done = await session.scalar(
            select(func.count()).where(
                PredictionRequest.id.in_(ids), PredictionRequest.status == "done"
            )
        )
    return done != len(ids)


async def test_admin_retrains_promotes_and_the_next_prediction_uses_the_new_model(
    platform: Platform, storage: Storage, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await import_archive(FIXTURE_ARCHIVE, sessions, storage.blobs)
    emulator = platform.emulator
    await platform.start_bot()
    worker = platform.start("worker")
    platform.start("trainer")

    admin = emulator.user(ADMIN, "Admin", language_code="en")
    admin.send_text("/retrain")
    queued = await emulator.wait_for(admin.id, text_has("queued"), 20)
    report = await emulator.wait_for(admin.id, text_has("finished"), 170)
    assert "Test split in the database" in (report.text or "")
    # Warm-started from the shipped model (v1) and measured against it on the same split.
    assert "Started from model v1's weights" in (report.text or "")
    assert "Balanced accuracy on the database test split: v2 " in (report.text or "")
    assert "the active v1" in (report.text or "")
    assert "Balanced accuracy of both models on the same sets" in (report.text or "")
    confusion = await emulator.wait_for(
        admin.id, lambda c: c.method == "sendMediaGroup" and c.text == "Confusion matrix", 20
    )
    assert confusion.files["photo"][:8] == b"\x89PNG\r\n\x1a\n"
    # The progress message was edited per epoch.
    assert any(
        c.method == "editMessageText" and c.message_id == queued.message_id for c in emulator.calls
    )

    async with sessions() as session:
        models = await registry.list_models(session)
    new = max(m.version for m in models)
    assert len(models) == 2 and new == 2
    admin.send_text(f"/promote {new}")
    # Both numbers on the split the run measured them on; a worse model is promoted when the
    # admin confirms.
    answer = await emulator.wait_for(admin.id, timeout=20)
    assert f"v{new}" in (answer.text or "") and "the active v1" in (answer.text or "")
    if answer.buttons:
        assert "worse" in (answer.text or "")
        admin.press(answer, text=f"Yes, make v{new} active")
        answer = await emulator.wait_for(admin.id, text_has("active now"), 20)
    assert f"v{new} is active" in (answer.text or "")
    # The worker loads the promoted model without a restart, then answers with it.
    async with asyncio.timeout(60):
        while f"model {new} loaded" not in platform.log_tail(worker):  # noqa: ASYNC110 - a file
            await asyncio.sleep(0.2)

    bob = emulator.user(31, "Bob", language_code="en")
    bob.send_photo((FACES / "astronaut.jpg").read_bytes())
    await emulator.wait_for(bob.id, is_answer, 60)
    await drained(sessions)
    async with sessions() as session:
        [request] = list(await session.scalars(select(PredictionRequest)))
    assert (request.status, request.model_version) == ("done", new)
