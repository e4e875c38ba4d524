"""The trainer process against PostgreSQL, moto S3 and the fake Bot API."""

import asyncio
import contextlib
import io
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cli.importer import import_archive
from db import registry
from db.engine import Storage, make_engine, make_sessionmaker
from db.models import TrainingRun
from db.samples import ensure_users
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.telegram import make_client
from tests.conftest import FIXTURE_ARCHIVE, child_env, free_port
from tests.ml.test_ferplus import fake_votes
from trainer.service import Trainer

ADMIN = 1000
PHOTOS = Path(__file__).parents[1] / "data" / "faces"
ROOT = Path(__file__).resolve().parents[2]


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
    bot = make_client(config)
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
    trainer = Trainer(config, storage, make_client(config))
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


class DatabaseGate:
    """A TCP proxy in front of PostgreSQL: closed, connections are refused and those open are
    cut, as when the server restarts or fails over; opened, it forwards again."""

    def __init__(self, url: str) -> None:
        target = make_url(url)
        self.target = (target.host or "127.0.0.1", target.port or 5432)
        self.port = free_port()
        self.url = target.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_the_trainer_waits_for_the_database_instead_of_exiting(
    storage: Storage, settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, server = botapi
    gate = DatabaseGate(settings.database_url or "")
    engine = make_engine(gate.url)
    behind_gate = Storage(engine, make_sessionmaker(engine), storage.blobs)
    config = trainer_settings(settings, server, poll_seconds=1)
    trainer = Trainer(config, behind_gate, make_client(config))
    first = await queue(storage, {"arch": "resnet"})  # fails at once: no such architecture
    try:
        # Started while PostgreSQL is unreachable: it waits.
        async with running(trainer) as task:
            await asyncio.sleep(3)
            assert not task.done()
            await gate.open()
            told = await emulator.wait_for(ADMIN, timeout=30)
            assert f"#{first}" in (told.text or "")

            # Gone again while the trainer waits for work: it waits again, then carries on.
            await gate.close()
            await asyncio.sleep(0.5)
            second = await queue(storage, {"arch": "resnet"})
            await asyncio.sleep(3)
            assert not task.done()
            await gate.open()
            told = await emulator.wait_for(ADMIN, timeout=30, after=told.seq)
            assert f"#{second}" in (told.text or "")
    finally:
        await gate.close()
        await engine.dispose()
    for run_id in (first, second):
        run = await get_run(storage, run_id)
        assert run.status == "failed" and "no arch" in (run.error or "")


def _start_trainer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "trainer"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigterm_mid_training_hands_the_run_back_and_exits_0(
    storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    """SIGTERM mid-training stops the training at its next batch (however far the schedule
    or early stopping would take it): the process exits 0, nothing is registered, and the
    run is queued again at the next start."""
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    run_id = await queue(storage, {"arch": "seed_cnn", "epochs": 500})
    env = child_env(settings, SHUTDOWN_GRACE_SECONDS="1", DATA_DIR=str(tmp_path / "var"))
    log = tmp_path / "trainer.log"
    trainer = _start_trainer(env, log)
    try:
        async with asyncio.timeout(240):
            while ((await get_run(storage, run_id)).progress or {}).get("epoch", 0) < 1:
                assert trainer.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.5)
        trainer.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(trainer.wait, 60)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert code == 0, log.read_text()[-3000:]
    assert f"run {run_id}: stopped mid-training; it resumes at the next start" in log.read_text()
    assert "registered" not in log.read_text()
    assert (await get_run(storage, run_id)).status == "running"  # until the next trainer starts
    async with storage.sessions.begin() as session:
        assert await registry.requeue_interrupted_runs(session) == [run_id]


async def test_a_trainer_killed_mid_run_resumes_it_at_its_next_start(
    storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL once the first epoch is reported (its checkpoint is written before): the next
    trainer queues the run again and continues it from epoch 2, to one registered model with
    as many epochs as asked, calibrated."""
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    run_id = await queue(storage, {"arch": "seed_cnn", "epochs": 3, "batch_size": 16})
    env = child_env(settings, DATA_DIR=str(tmp_path / "var"), FER2013_ZIP=str(FIXTURE_ARCHIVE))
    first = _start_trainer(env, tmp_path / "first.log")
    try:
        async with asyncio.timeout(240):
            while ((await get_run(storage, run_id)).progress or {}).get("epoch", 0) < 1:
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                await asyncio.sleep(0.05)
        first.kill()
        await asyncio.to_thread(first.wait, 30)
    finally:
        if first.poll() is None:
            first.kill()
    done = (await get_run(storage, run_id)).progress["epoch"]
    assert 1 <= done < 3
    second = _start_trainer(env, tmp_path / "second.log")
    try:
        async with asyncio.timeout(300):
            while (run := await get_run(storage, run_id)).status != "done":
                assert run.status != "failed", run.error
                assert second.poll() is None, (tmp_path / "second.log").read_text()[-3000:]
                await asyncio.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 60)
    log = (tmp_path / "second.log").read_text()
    assert f"resuming after epoch {done}" in log
    async with storage.sessions() as session:
        models = await registry.list_models(session)
    assert len(models) == 1 and models[0].id == run.model_id
    training = models[0].metrics["training"]
    assert training["resumed_at"] == done and training["epochs_run"] == 3
    assert 0.3 <= models[0].metrics["calibration"]["unsure_below"] <= 0.8
    assert run.progress["epoch"] == 3
