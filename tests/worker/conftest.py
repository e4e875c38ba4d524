"""Fixtures for the worker: the fake Bot API, tiny models that always answer one class, photos
in the test bucket, and workers running as tasks of the test's event loop."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue
from db.engine import Storage
from emobot.labels import CLASSES
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.botclient import BotClient
from runtime.telegram import make_client
from worker.service import Worker

ROOT = Path(__file__).parents[2]
PHOTOS = Path(__file__).parents[1] / "data" / "faces"
TOKEN = "42:worker-test"


def photo(name: str) -> bytes:
    """astronaut.jpg (one face), three_faces.jpg, coffee.jpg (none)."""
    return (PHOTOS / name).read_bytes()


def build_constant_model(label: str, path: Path) -> Path:
    """A valid emotion model (48×48×1 in, softmax over the 4 classes out) that always answers
    `label` with 0.97: replies then show which model answered."""
    import keras
    import numpy as np

    from ml.keras_classifier import save_for_serving

    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(len(CLASSES), activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)), name=f"always_{label}")
    bias = np.zeros(len(CLASSES), np.float32)
    bias[CLASSES.index(label)] = np.log(0.97 / 0.01)
    dense.set_weights([np.zeros((48 * 48, len(CLASSES)), np.float32), bias])
    save_for_serving(model, path)
    return path


@pytest.fixture(scope="session")
def constant_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("models")
    built: dict[str, Path] = {}

    def get(label: str) -> Path:
        if label not in built:
            built[label] = build_constant_model(label, folder / f"always_{label}.keras")
        return built[label]

    return get


@pytest.fixture
def worker_settings(
    settings: Settings,
    constant_model: Callable[[str], Path],
    botapi: tuple[BotAPIEmulator, BotAPIServer],
) -> Settings:
    """Short waits and leases; the registry is empty, so MODEL_PATH (always "happy") answers."""
    return settings.model_copy(
        update={
            "bot_token": SecretStr(TOKEN),
            "telegram_api_url": botapi[1].url,
            "batch_wait_ms": 20,
            "lease_seconds": 2,
            "poll_seconds": 0.5,
            "model_path": constant_model("happy"),
        }
    )


@pytest.fixture
async def bot(worker_settings: Settings) -> AsyncIterator[BotClient]:
    bot = make_client(worker_settings)
    yield bot
    await bot.session.close()


@asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """Workers as tasks; stopped (and their failures raised) when the block ends."""
    for worker in workers:
        await worker.models.load()
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks)


async def enqueue_photo(
    storage: Storage,
    data: bytes,
    *,
    chat_id: int,
    user_id: int | None = None,
    message_id: int | None = None,
    language: str = "ru",
    thread_id: int | None = None,
) -> int:
    _, key = await storage.blobs.put_content(data)
    return await enqueue_key(
        storage.sessions,
        key,
        chat_id=chat_id,
        user_id=user_id,
        message_id=message_id,
        language=language,
        thread_id=thread_id,
    )


async def enqueue_key(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    *,
    chat_id: int,
    user_id: int | None = None,
    message_id: int | None = None,
    language: str = "ru",
    thread_id: int | None = None,
) -> int:
    async with sessions.begin() as session:
        request = await queue.enqueue(
            session,
            chat_id=chat_id,
            user_id=user_id,
            message_id=message_id,
            blob_key=key,
            language=language,
            thread_id=thread_id,
        )
        return request.id


async def start_worker_process(
    settings: Settings, **overrides: object
) -> asyncio.subprocess.Process:
    """`python -m cli worker` with these settings (and `overrides`, as environment variables)."""
    assert settings.bot_token is not None and settings.aws_secret_access_key is not None
    values = {
        "DATABASE_URL": settings.database_url,
        "BLOB_STORE_URL": settings.blob_store_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key.get_secret_value(),
        "DATA_DIR": settings.data_dir,
        "BOT_TOKEN": settings.bot_token.get_secret_value(),
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "MODEL_PATH": settings.model_path,
        "LEASE_SECONDS": settings.lease_seconds,
        "BATCH_WAIT_MS": settings.batch_wait_ms,
        "POLL_SECONDS": settings.poll_seconds,
        **overrides,
    }
    env = {**os.environ, **{k: str(v) for k, v in values.items()}}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]], process: asyncio.subprocess.Process, within: float
) -> None:
    """Poll `condition`; the process is killed and its output shown if it does not get there."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        if process.returncode is not None or asyncio.get_running_loop().time() > deadline:
            process.kill()
            output = (await process.communicate())[0].decode(errors="replace")
            raise AssertionError(f"the worker process did not get there:\n{output[-3000:]}")
        await asyncio.sleep(0.05)
