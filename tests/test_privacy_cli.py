"""`emobot purge` and `emobot forget` as an operator runs them."""

import subprocess
import sys

from sqlalchemy import func, select, text

from db import queue
from db.blob_refs import put_photo
from db.contributions import Contribution, add_contribution
from db.engine import Storage
from db.models import PredictionRequest, Sample, User
from db.users import upsert_user
from emobot.settings import Settings
from tests.conftest import child_env


def emobot(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=child_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def answered(storage: Storage, data: bytes, hours_ago: float, user_id: int = 1) -> str:
    async with storage.sessions.begin() as session:
        await upsert_user(session, user_id, username=None, first_name=None, telegram_language=None)
        _, key = await put_photo(session, storage.blobs, data)
        row = await queue.enqueue(
            session, chat_id=user_id, user_id=user_id, message_id=1, blob_key=key
        )
        await session.execute(
            text(
                "UPDATE prediction_requests SET status = 'done', "
                "finished_at = now() - make_interval(secs => :ago) WHERE id = :id"
            ),
            {"ago": hours_ago * 3600, "id": row.id},
        )
    return key


async def test_purge_dry_run_then_purge(settings: Settings, storage: Storage) -> None:
    old = await answered(storage, b"two hours old", 2)
    new = await answered(storage, b"a minute old", 1 / 60)
    retention = {"PREDICTION_RETENTION_HOURS": "1"}

    dry = emobot(settings, "purge", "--dry-run", **retention)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == f"would remove {old}"
    assert dry.stdout.splitlines()[-1] == (
        "1 prediction requests would no longer keep their photo: 1 photos would be removed, "
        "0 kept; 0 expired exports would be removed"
    )
    assert await storage.blobs.list("images/") == sorted([old, new])

    done = emobot(settings, "purge", **retention)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"removed {old}"
    assert await storage.blobs.list("images/") == [new]
    again = emobot(settings, "purge", **retention)
    assert again.stdout.startswith("0 prediction requests")


async def test_forget_a_telegram_id(settings: Settings, storage: Storage) -> None:
    person, other = 31_337_000, 31_337_001
    photo = await answered(storage, b"their photo", 0, user_id=person)
    await answered(storage, b"someone else's", 0, user_id=other)
    async with storage.sessions.begin() as session:
        sha, key = await put_photo(session, storage.blobs, b"their sample")
        await add_contribution(
            session, person, Contribution(sha, key, "happy", (0, 0, 1, 1), 1, 1, 12, "f")
        )

    result = emobot(settings, "forget", str(person))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Telegram user {person}: 1 contributed samples, 1 prediction requests, 0 dialog "
        "states and the user row deleted"
    )
    assert sorted(lines[1:]) == sorted([f"removed {photo}", f"removed {key}"])
    async with storage.sessions() as session:
        assert await session.get(User, person) is None and await session.get(User, other)
        assert await session.scalar(select(func.count()).select_from(Sample)) == 0
        [left] = await session.scalars(select(PredictionRequest))
        assert left.user_id == other
    assert len(await storage.blobs.list("images/")) == 1

    unknown = emobot(settings, "forget", "42")
    assert unknown.returncode == 0 and "0 contributed samples" in unknown.stdout
    assert "no user row deleted" in unknown.stdout
