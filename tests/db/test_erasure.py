"""Erasing a person (db.erasure) against PostgreSQL and both blob stores: every table and the
blob store are listed afterwards, and nothing of the person is left."""

from pathlib import Path

import cv2
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cli.importer import import_archive
from db import queue
from db.blob_refs import put_photo
from db.blobs import BlobStore
from db.contributions import Contribution, add_contribution
from db.engine import Storage
from db.erasure import forget
from db.models import FsmState, PredictionRequest, Sample, TrainingRun
from db.samples import dataset_version
from db.training_set import train_refs
from db.users import give_consent, upsert_user
from tests.conftest import FIXTURE_ARCHIVE

Sessions = async_sessionmaker[AsyncSession]
FACES = Path(__file__).parents[1] / "data" / "faces"
ASTRONAUT_BOX = (178, 68, 93, 93)

# Long enough not to turn up by chance in timestamps (6 digits of microseconds) or hashes.
PERSON, NAME, USERNAME = 987_654_321, "Zeldaunique", "zelda_unique"
OTHER = 123_123_123


def faces(count: int) -> list[bytes]:
    """The one-face photo at other JPEG qualities: distinct bytes, the same face."""
    image = cv2.imread(str(FACES / "astronaut.jpg"))
    return [
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70 + i])[1].tobytes()
        for i in range(count)
    ]


async def add_user(session: AsyncSession, user_id: int, name: str, username: str) -> None:
    await upsert_user(session, user_id, username=username, first_name=name, telegram_language="en")
    await give_consent(session, user_id, 2)


async def contribute(session: AsyncSession, blobs: BlobStore, user_id: int, data: bytes) -> str:
    sha, key = await put_photo(session, blobs, data)
    item = Contribution(sha, key, "happy", ASTRONAUT_BOX, 512, 512, len(data), f"file-{sha[:6]}")
    await add_contribution(session, user_id, item)
    return key


async def predict(session: AsyncSession, blobs: BlobStore, user_id: int, data: bytes) -> str:
    _, key = await put_photo(session, blobs, data)
    await queue.enqueue(session, chat_id=user_id, user_id=user_id, message_id=1, blob_key=key)
    return key


async def traces(engine: AsyncEngine, *needles: str) -> dict[str, list[str]]:
    """Every row of every table, as text, that contains one of `needles`."""
    found: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        tables = await conn.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        for table in list(tables):
            rows = await conn.scalars(text(f'SELECT t::text FROM "{table}" AS t'))
            hits = [r for r in rows if any(n in r for n in needles)]
            if hits:
                found[table] = hits
    return found


async def test_forget_leaves_nothing_of_the_person_but_shared_photos_stay(
    engine: AsyncEngine, sessions: Sessions, blob_store: BlobStore
) -> None:
    *mine, theirs, alone = faces(5)
    blobs = blob_store
    async with sessions.begin() as session:
        await add_user(session, PERSON, NAME, USERNAME)
        await add_user(session, OTHER, "Other", "other_user")
        own_keys = [await contribute(session, blobs, PERSON, d) for d in mine]
        # One deleted through /mine earlier: the row is still there, marked deleted.
        await session.execute(
            text("UPDATE samples SET status = 'deleted' WHERE blob_key = :key"),
            {"key": own_keys[0]},
        )
        # The person's second photo is also one the other person sent for a prediction, and the
        # other person's contribution one the person sent.
        await predict(session, blobs, OTHER, mine[1])
        other_key = await contribute(session, blobs, OTHER, theirs)
        await predict(session, blobs, PERSON, theirs)
        alone_key = await predict(session, blobs, PERSON, alone)
        # Answered, its photo kept for debugging (PREDICTION_RETENTION_HOURS > 0).
        answered = await predict(session, blobs, PERSON, b"kept for debugging")
        await session.execute(
            text(
                "UPDATE prediction_requests SET status = 'done', finished_at = now(), "
                "result = '{\"faces\": []}' WHERE blob_key = :key"
            ),
            {"key": answered},
        )
        session.add_all(
            [
                FsmState(
                    key=f"fsm:{PERSON}:{PERSON}:default",
                    state="Contribute:photos",
                    data={"label": "happy"},
                ),
                FsmState(key=f"fsm:-100555:{PERSON}:default", state="Predict:photo"),
                FsmState(key=f"fsm:{OTHER}:{OTHER}:default", state="Predict:photo"),
                TrainingRun(requested_by=PERSON, chat_id=PERSON, status="done"),
            ]
        )
    await blobs.put("exports/emobot-dataset-20261201-120000.zip", b"PK")
    needles = (str(PERSON), NAME, USERNAME)
    assert set(await traces(engine, *needles)) == {
        "users",
        "samples",
        "prediction_requests",
        "fsm_states",
        "training_runs",
    }
    other_before = await traces(engine, str(OTHER), "other_user")

    async with sessions() as session:
        erased = await forget(session, blobs, PERSON)

    counts = (erased.contributions, erased.predictions, erased.dialogs, erased.user)
    assert counts == (3, 3, 2, True)
    assert await traces(engine, *needles) == {}
    # Left in the store: the other person's sample, and the person's photo the other person
    # also sent (their request still needs it). The rest is gone, the export included.
    assert await blobs.list() == sorted([own_keys[1], other_key])
    assert sorted(erased.blobs.kept) == sorted([own_keys[1], other_key])
    assert sorted(erased.blobs.removed) == sorted([own_keys[0], own_keys[2], alone_key, answered])
    assert erased.exports == ["exports/emobot-dataset-20261201-120000.zip"]
    # The other person's rows are all still there; the training run stays, unattributed.
    assert await traces(engine, str(OTHER), "other_user") == other_before
    async with sessions() as session:
        [run] = await session.scalars(select(TrainingRun))
        assert (run.requested_by, run.chat_id) == (None, None)

    # Forgetting twice finds nothing more.
    async with sessions() as session:
        again = await forget(session, blobs, PERSON)
    assert (again.contributions, again.predictions, again.dialogs, again.user) == (0, 0, 0, False)


async def test_training_after_an_erasure_does_not_use_the_erased_photos(
    storage: Storage, tmp_path: Path
) -> None:
    from trainer.job import load_training_data

    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    async with storage.sessions.begin() as session:
        await add_user(session, PERSON, NAME, USERNAME)
        keys = [await contribute(session, storage.blobs, PERSON, d) for d in faces(2)]
    cache = tmp_path / "cache"
    before = await load_training_data(storage, cache)
    async with storage.sessions() as session:
        assert set(keys) <= {r.blob_key for r in await train_refs(session)}

    async with storage.sessions() as session:
        await forget(session, storage.blobs, PERSON)
    async with storage.sessions() as session:
        assert not set(keys) & {r.blob_key for r in await train_refs(session)}
        assert await dataset_version(session) != before.version.rsplit("-t", 1)[0]
    after = await load_training_data(storage, cache)
    assert after.version != before.version  # not the cached arrays of before
    assert len(after.train.x) == len(before.train.x) - 2 and after.skipped == before.skipped
    # The old cache held the erased faces: only the new version's file is left.
    assert [p.name for p in cache.glob("*.npz")] == [f"{after.version}.npz"]
    async with storage.sessions() as session:
        assert await session.scalar(select(Sample).where(Sample.contributor_id == PERSON)) is None
        assert list(await session.scalars(select(PredictionRequest))) == []
