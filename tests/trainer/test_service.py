"""The trainer process against PostgreSQL, moto S3 and the fake Bot API."""

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import registry
from db.engine import Storage
from db.models import TrainingRun
from db.samples import ensure_users
from emobot.importer import import_archive
from emobot.settings import Settings
from emobot.telegram import make_bot
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.conftest import FIXTURE_ARCHIVE
from tests.ml.test_ferplus import fake_votes
from trainer.service import Trainer

ADMIN = 1000
PHOTOS = Path(__file__).parents[1] / "data" / "faces"


@contextlib.asynccontextmanager
async def running(trainer: Trainer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(trainer.run())
    try:
        yield task
    finally:
        trainer.stop()
        await asyncio.wait_for(task, 120)
        if trainer.bot is not None:
            await trainer.bot.session.close()


def trainer_settings(settings: Settings, server: BotAPIServer, poll_seconds: float) -> Settings:
    return settings.model_copy(
        update={
            "bot_token": SecretStr("42:trainer-test"),
            "telegram_api_url": server.url,
            "poll_seconds": poll_seconds,
            "fer2013_zip": FIXTURE_ARCHIVE,  # the protocol, on the small archive
        }
    )


async def queue(
    storage: Storage, params: dict[str, object], progress_message_id: int | None = None
) -> int:
    async with storage.sessions.begin() as session:
        await ensure_users(session, [ADMIN])
        run = await registry.queue_training_run(
            session, requested_by=ADMIN, chat_id=ADMIN, params=params
        )
        assert run is not None
        run.progress_message_id = progress_message_id
        await session.flush()
        return run.id


async def get_run(storage: Storage, run_id: int) -> TrainingRun:
    async with storage.sessions() as session:
        run = await registry.get_training_run(session, run_id)
        assert run is not None
        return run


async def test_claim_is_exclusive_and_interrupted_runs_return(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        queued = await registry.queue_training_run(session, requested_by=None, chat_id=None)
        assert queued is not None
    async with sessions.begin() as first, sessions.begin() as second:
        claimed = await registry.claim_training_run(first)
        # The row is locked by the first transaction: the second skips it.
        assert await registry.claim_training_run(second) is None
    assert claimed is not None and claimed.status == "running" and claimed.started_at
    async with sessions.begin() as session:
        assert await registry.claim_training_run(session) is None  # nothing queued any more
        assert await registry.requeue_interrupted_runs(session) == [queued.id]
    async with sessions.begin() as session:
        again = await registry.claim_training_run(session)
        assert again is not None and again.id == queued.id


def labelled_photos(folder: Path) -> Path:
    for label, name in [("happy", "astronaut.jpg"), ("neutral", "group_one.jpg")]:
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / name).write_bytes((PHOTOS / name).read_bytes())
    return folder


async def test_a_run_trains_reports_progress_and_results(
    storage: Storage,
    settings: Settings,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    emulator, server = botapi
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    fake_votes(tmp_path / "votes.csv")
    config = trainer_settings(settings, server, poll_seconds=0.5).model_copy(
        update={
            "ferplus_csv": tmp_path / "votes.csv",
            "real_photos": labelled_photos(tmp_path / "photos"),
        }
    )
    bot = make_bot(config)
    assert bot is not None
    queued_message = await bot.send_message(ADMIN, "queued")
    run_id = await queue(
        storage, {"arch": "seed_cnn", "epochs": 2, "promote": True}, queued_message.message_id
    )
    trainer = Trainer(config, storage, bot)
    done_before = sample("emobot_trainer_runs_total", outcome="done")
    async with running(trainer):
        pictures = await emulator.wait_for(
            ADMIN, lambda c: c.method == "sendMediaGroup", timeout=300
        )
    run = await get_run(storage, run_id)
    assert run.status == "done" and run.error is None
    assert sample("emobot_trainer_runs_total", outcome="done") == done_before + 1
    assert sample("emobot_trainer_running") == 0
    assert sample("emobot_trainer_epoch") == sample("emobot_trainer_epochs") == 2
    assert sample("emobot_trainer_last_run_model_version") == 1
    assert 0 < sample("emobot_trainer_last_run_balanced_accuracy") <= 1
    assert run.progress == {**run.progress, "epoch": 2, "epochs": 2}
    assert {"loss", "val_bal_acc"} <= set(run.progress)
    assert run.model_id is not None and run.finished_at and run.reported_at
    edits = [c for c in emulator.calls_in(ADMIN, after=0) if c.method == "editMessageText"]
    assert [c.message_id for c in edits] == [queued_message.message_id] * 3
    # "queued" no longer while the data is prepared: the run says it started.
    assert f"Обучение #{run_id} (seed_cnn, эпох: 2) идёт" in (edits[0].text or "")
    assert "2 из 2" in (edits[-1].text or "")  # the admin's language (ru by default)
    report = await emulator.wait_for(
        ADMIN, lambda c: c.method == "sendMessage", after=edits[-1].seq
    )
    text = report.text or ""
    assert "v1" in text and "сбаланс. точность" in text  # the report is all in Russian
    # The database's test split, then the fixed protocol: every set whose data was given.
    titles = ["Тестовая выборка из базы", "FER2013 test-4", "ferplus-test", "Реальные фото"]
    assert sorted(titles, key=text.index) == titles
    assert sum(line.startswith("сбаланс. точность") for line in text.splitlines()) == 4
    assert len(text) < 4096  # one Telegram message
    assert "лицо найдено" in text  # the real photos' share with a face detected
    photos = [c for c in emulator.calls_in(ADMIN, after=0) if c.method == "sendMediaGroup"]
    assert len(photos) == 2 and pictures in photos
    for call in photos:
        assert Image.open(io.BytesIO(call.files["photo"])).format == "PNG"
    async with storage.sessions() as session:
        active = await registry.active_model(session)
        assert active is not None and active.id == run.model_id


async def test_a_failing_run_is_marked_and_the_chat_told_woken_by_notify(
    storage: Storage, settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, server = botapi
    # Polling only every 60 s: an answer within seconds means NOTIFY woke the trainer.
    config = trainer_settings(settings, server, poll_seconds=60)
    trainer = Trainer(config, storage, make_bot(config))
    failed_before = sample("emobot_trainer_runs_total", outcome="failed")
    refused_before = sample("emobot_trainer_runs_total", outcome="refused")
    async with running(trainer):
        await asyncio.sleep(1)  # the trainer is waiting now
        # The error names the arch as given: HTML-escaped in the report (parse_mode=HTML),
        # which Telegram (and the fake Bot API) would refuse otherwise.
        run_id = await queue(storage, {"arch": "<resnet>"})
        told = await emulator.wait_for(ADMIN, timeout=15)
        no_data = await queue_after(storage, run_id, {"epochs": 1})
        told_again = await emulator.wait_for(ADMIN, timeout=15, after=told.seq)
    assert f"#{run_id}" in (told.text or "") and "&lt;resnet&gt;" in (told.text or "")
    run = await get_run(storage, run_id)
    assert run.status == "failed" and "no arch" in (run.error or "")
    assert run.finished_at is not None and run.model_id is None
    # An empty dataset is refused, in the requester's language (Russian: no language known),
    # naming what is missing and how to load FER2013; no model is registered.
    assert f"Обучение #{no_data} не начато" in (told_again.text or "")
    assert "emobot import-fer2013" in (told_again.text or "")
    refused = await get_run(storage, no_data)
    assert refused.status == "failed" and refused.model_id is None
    assert "Not enough data" in (refused.error or "")
    assert sample("emobot_trainer_runs_total", outcome="failed") == failed_before + 1
    assert sample("emobot_trainer_runs_total", outcome="refused") == refused_before + 1


def sample(name: str, **labels: str) -> float:
    """A metric of this process (the trainer runs in the test's process here)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def queue_after(storage: Storage, previous: int, params: dict[str, object]) -> int:
    """Queue once the previous run is finished (one run at a time)."""
    for _ in range(100):
        if (await get_run(storage, previous)).status in ("done", "failed"):
            return await queue(storage, params)
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {previous} did not finish")
