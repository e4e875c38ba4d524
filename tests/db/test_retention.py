"""The purge of prediction photos (db.retention) against PostgreSQL and both blob stores."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue, retention
from db.blob_refs import put_photo
from db.blobs import BlobStore
from db.contributions import Contribution, add_contribution
from db.models import PredictionRequest
from db.retention import EXPORT_LINK_SECONDS, ORPHAN_AGE_SECONDS, purge
from db.users import upsert_user

Sessions = async_sessionmaker[AsyncSession]


async def request(
    sessions: Sessions,
    blobs: BlobStore,
    data: bytes,
    *,
    status: str = "done",
    hours_ago: float = 0.0,
) -> tuple[int, str]:
    """A request for a photo of `data`, finished (`done` or `failed`) `hours_ago`, or left
    `queued`/`processing`; returns (id, blob key)."""
    async with sessions.begin() as session:
        _, key = await put_photo(session, blobs, data)
        row = await queue.enqueue(session, chat_id=7, user_id=None, message_id=1, blob_key=key)
        await session.execute(
            text("""
            UPDATE prediction_requests SET status = :status, result = '{"faces": []}',
                finished_at = CASE WHEN :finished THEN now() - make_interval(secs => :ago) END
            WHERE id = :id
            """),
            {
                "status": status,
                "finished": status in ("done", "failed"),
                "ago": hours_ago * 3600,
                "id": row.id,
            },
        )
        return row.id, key


async def photo_kept(sessions: Sessions, request_id: int) -> bool:
    async with sessions() as session:
        row = await session.get(PredictionRequest, request_id)
        assert row is not None and row.result == {"faces": []}  # the result always stays
        return row.photo_deleted_at is None


async def test_photos_go_once_past_the_retention_and_results_stay(
    sessions: Sessions, blob_store: BlobStore
) -> None:
    old, old_key = await request(sessions, blob_store, b"old", hours_ago=3)
    failed, failed_key = await request(
        sessions, blob_store, b"failed", status="failed", hours_ago=3
    )
    fresh, fresh_key = await request(sessions, blob_store, b"fresh", hours_ago=1)
    _, waiting_key = await request(sessions, blob_store, b"waiting", status="queued")

    report = await purge(sessions, blob_store, retention_hours=2)

    assert sorted(report.requests) == sorted([old, failed])
    assert sorted(report.removed) == sorted([old_key, failed_key]) and report.kept == []
    assert await blob_store.list("images/") == sorted([fresh_key, waiting_key])
    assert [await photo_kept(sessions, i) for i in (old, failed, fresh)] == [False, False, True]
    # Nothing left to do: a second purge finds nothing; with no retention the fresh one goes.
    assert (await purge(sessions, blob_store, retention_hours=2)).requests == []
    assert (await purge(sessions, blob_store, retention_hours=0)).removed == [fresh_key]
    assert await blob_store.list("images/") == [waiting_key]


async def test_a_photo_that_is_also_a_sample_or_another_request_stays(
    sessions: Sessions, blob_store: BlobStore
) -> None:
    answered, sample_key = await request(sessions, blob_store, b"also a sample")
    async with sessions.begin() as session:
        await upsert_user(session, 5, username=None, first_name=None, telegram_language=None)
        item = Contribution(
            sample_key.rsplit("/", 1)[1], sample_key, "happy", (0, 0, 1, 1), 1, 1, 13, "u1"
        )
        await add_contribution(session, 5, item)
    first, shared_key = await request(sessions, blob_store, b"sent twice")
    second, _ = await request(sessions, blob_store, b"sent twice", status="processing")

    report = await purge(sessions, blob_store, retention_hours=0)
    assert sorted(report.requests) == sorted([answered, first])
    assert report.removed == [] and sorted(report.kept) == sorted([sample_key, shared_key])
    assert await blob_store.list("images/") == sorted([sample_key, shared_key])

    # The second request is answered: the shared photo goes, the sample's stays.
    async with sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE prediction_requests SET status = 'done', finished_at = now() WHERE id = :id"
            ),
            {"id": second},
        )
    assert (await purge(sessions, blob_store, retention_hours=0)).removed == [shared_key]
    assert await blob_store.list("images/") == [sample_key]


async def test_dry_run_changes_nothing(sessions: Sessions, blob_store: BlobStore) -> None:
    answered, key = await request(sessions, blob_store, b"answered")
    report = await purge(sessions, blob_store, retention_hours=0, dry_run=True)
    assert (report.requests, report.removed) == ([answered], [key])
    assert report.lines(dry_run=True)[0] == f"would remove {key}"
    assert await blob_store.list("images/") == [key] and await photo_kept(sessions, answered)


async def test_concurrent_purges_let_go_of_everything_once(
    sessions: Sessions, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several workers purge at once: every row is claimed by one of them, and a blob shared by
    rows two purges hold is removed by the last one to let go of it, not lost in between."""
    monkeypatch.setattr(retention, "BATCH", 5)  # small batches: the purges overlap
    ids = []
    for i in range(60):
        request_id, _ = await request(sessions, blob_store, f"photo {i % 12}".encode())
        ids.append(request_id)
    _, queued_key = await request(sessions, blob_store, b"photo 0", status="queued")

    reports = await asyncio.gather(
        *(purge(sessions, blob_store, retention_hours=0) for _ in range(4))
    )
    # Rows whose key another purge held at that moment are left to the next round.
    reports.append(await purge(sessions, blob_store, retention_hours=0))
    purged = [i for r in reports for i in r.requests]
    assert sorted(purged) == sorted(ids)  # each row once
    assert await blob_store.list("images/") == [queued_key]
    async with sessions() as session:
        kept = await session.scalars(
            select(PredictionRequest.id).where(PredictionRequest.photo_deleted_at.is_(None))
        )
        assert len(list(kept)) == 1


async def test_a_photo_being_stored_for_a_new_request_is_not_deleted_under_it(
    sessions: Sessions, blob_store: BlobStore
) -> None:
    """A writer found the blob there and is about to commit its row: the purge must not remove
    the blob in between (put_photo holds the key until the commit)."""
    answered, key = await request(sessions, blob_store, b"same photo")
    async with sessions() as writer:
        await put_photo(writer, blob_store, b"same photo")  # the blob exists: not uploaded
        report = await purge(sessions, blob_store, retention_hours=0)
        assert report.requests == [] and report.left == 1 and await blob_store.exists(key)
        await queue.enqueue(writer, chat_id=8, user_id=None, message_id=2, blob_key=key)
        await writer.commit()
    report = await purge(sessions, blob_store, retention_hours=0)
    assert report.requests == [answered] and report.kept == [key]
    assert await blob_store.exists(key)


async def test_export_archives_go_when_their_link_expired(
    sessions: Sessions, blob_store: BlobStore
) -> None:
    now = datetime.now(UTC)
    expired = now - timedelta(seconds=EXPORT_LINK_SECONDS + 60)
    old = f"exports/emobot-dataset-{expired:%Y%m%d-%H%M%S}.zip"
    new = f"exports/emobot-dataset-{now:%Y%m%d-%H%M%S}.zip"
    for key in (old, new):
        await blob_store.put(key, b"PK")
    report = await purge(sessions, blob_store, retention_hours=0)
    assert report.exports == [old]
    assert await blob_store.list("exports/") == [new]


async def test_an_orphan_photo_is_swept_once_it_is_an_hour_old(
    sessions: Sessions, blob_store: BlobStore
) -> None:
    """A photo stored for a row whose insert then failed (the database went away): nothing
    points at it, so the purge removes it once it is older than ORPHAN_AGE_SECONDS; photos
    rows use, and other prefixes, stay."""
    async with sessions() as failed_insert:
        _, orphan = await put_photo(failed_insert, blob_store, b"insert failed")
        await failed_insert.rollback()
    _, queued = await request(sessions, blob_store, b"queued", status="queued")
    _, answered = await request(sessions, blob_store, b"answered", hours_ago=1)
    async with sessions.begin() as session:
        await upsert_user(session, 5, username=None, first_name=None, telegram_language=None)
        _, sample = await put_photo(session, blob_store, b"a sample")
        item = Contribution(sample.rsplit("/", 1)[1], sample, "happy", (0, 0, 1, 1), 1, 1, 8, "u1")
        await add_contribution(session, 5, item)
    await blob_store.put("models/7.keras", b"a model")
    in_use = sorted([queued, answered, sample])

    # Younger than an hour: it may be a row's photo about to be committed.
    report = await purge(sessions, blob_store, retention_hours=24)
    assert report.orphans == [] and await blob_store.exists(orphan)

    later = datetime.now(UTC) + timedelta(seconds=ORPHAN_AGE_SECONDS + 60)
    report = await purge(sessions, blob_store, retention_hours=24, dry_run=True, now=later)
    assert report.orphans == [orphan] and await blob_store.exists(orphan)
    assert report.lines(dry_run=True)[0] == f"would remove {orphan} (an orphan: no row uses it)"
    # The same photo being stored again right now, for a row not committed yet: left alone.
    async with sessions() as writer:
        await put_photo(writer, blob_store, b"insert failed")
        report = await purge(sessions, blob_store, retention_hours=24, now=later)
        assert report.orphans == [] and await blob_store.exists(orphan)
        await writer.rollback()

    report = await purge(sessions, blob_store, retention_hours=24, now=later)
    assert report.orphans == [orphan] and report.removed == []
    assert await blob_store.list("images/") == in_use
    assert await blob_store.exists("models/7.keras")
    assert "1 orphan photos removed" in report.lines()[-1]
