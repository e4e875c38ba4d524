"""Near-copies in SQL (db.samples.near_copy_of, db.contributions) on PostgreSQL: the bit
arithmetic agrees with ml.near_dupes at the thresholds, and what a contribution does to its
copies."""

import cv2
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.contribute import find_one_face
from cli.importer import hash_old_contributions
from db.blob_refs import put_photo
from db.contributions import (
    Added,
    Contribution,
    add_contribution,
    delete_contributions,
    near_copy_labels,
)
from db.engine import Storage
from db.erasure import erase_rows
from db.models import Sample
from db.samples import ensure_users, trainable_counts
from emobot.face_hash import BLOCK_MAX, PHASH_MAX, FaceHash
from tests.bot.conftest import FACES, different_faces

Sessions = async_sessionmaker[AsyncSession]
BASE = FaceHash(-0x0123456789ABCDEF, bytes(range(32)))


def flipped(face: FaceHash, phash_bits: int, block_bits: int) -> FaceHash:
    """`face` with its lowest (highest, for the sign) bits flipped."""
    phash = face.phash ^ ((1 << phash_bits) - 1)
    if phash_bits == 64:
        phash = ~face.phash
    block = int.from_bytes(face.block) ^ ((1 << block_bits) - 1) << (256 - block_bits)
    return FaceHash(phash, block.to_bytes(32))


def contribution(n: int, label: str, face: FaceHash | None) -> Contribution:
    sha = f"{n:064x}"
    return Contribution(sha, f"images/{sha}", label, (0, 0, 64, 64), 64, 64, 100, f"u{n}", face)


async def store(session: AsyncSession, n: int, label: str, face: FaceHash | None) -> Added:
    await ensure_users(session, [7])
    return await add_contribution(session, 7, contribution(n, label, face))


@pytest.mark.parametrize(
    ("phash_bits", "block_bits", "copy"),
    [
        (0, 0, True),
        (PHASH_MAX, BLOCK_MAX, True),
        (PHASH_MAX + 1, 0, False),
        (0, BLOCK_MAX + 1, False),
        (64, 256, False),
    ],
)
async def test_sql_matches_the_python_rule(
    sessions: Sessions, phash_bits: int, block_bits: int, copy: bool
) -> None:
    other = flipped(BASE, phash_bits, block_bits)
    assert BASE.distance(other) == (phash_bits, block_bits)
    assert BASE.is_copy(other) is copy
    async with sessions.begin() as session:
        await store(session, 1, "happy", BASE)
        assert await near_copy_labels(session, other) == ({"happy"} if copy else set())
        [stored] = await session.scalars(select(Sample))
        assert (stored.phash, stored.block_hash) == (BASE.phash, BASE.block)


async def test_contributions_and_their_near_copies(sessions: Sessions) -> None:
    close = flipped(BASE, 3, 10)
    async with sessions.begin() as session:
        assert await store(session, 1, "happy", BASE) is Added.NEW
        assert await store(session, 2, "happy", close) is Added.DUPLICATE
        assert await store(session, 3, "neutral", None) is Added.NEW  # no hash: never a copy
        assert await store(session, 4, "negative", close) is Added.NEW
        assert await store(session, 5, "happy", flipped(BASE, 20, 0)) is Added.NEW
    async with sessions() as session:
        rows = {s.sha256[-1]: s for s in await session.scalars(select(Sample))}
        assert {k: r.near_conflict for k, r in rows.items()} == {
            "1": True,
            "3": False,
            "4": True,
            "5": False,
        }
        assert await trainable_counts(session) == {"neutral": 1, "happy": 1}
        assert await near_copy_labels(session, close) == {"happy", "negative"}


async def test_a_deleted_or_erased_copy_no_longer_holds_the_others_out_of_training(
    sessions: Sessions,
) -> None:
    async with sessions.begin() as session:
        await ensure_users(session, [8])
        await store(session, 1, "happy", BASE)
        await add_contribution(session, 8, contribution(2, "negative", flipped(BASE, 2, 5)))
        await add_contribution(session, 8, contribution(3, "surprise", flipped(BASE, 4, 9)))
    flags = select(Sample.sha256, Sample.near_conflict).order_by(Sample.sha256)
    async with sessions.begin() as session:
        [negative] = await session.scalars(select(Sample.id).where(Sample.label == "negative"))
        assert await delete_contributions(session, 8, negative) == (1, [f"images/{2:064x}"])
        # The surprised copy still disagrees with the happy one: both stay out.
        assert [f for _, f in (await session.execute(flags)).all()] == [True, False, True]
    async with sessions.begin() as session:
        await erase_rows(session, 8)
        assert [f for _, f in (await session.execute(flags)).all()] == [False]
        assert await trainable_counts(session) == {"happy": 1}


async def test_contributions_stored_before_hashes_get_them_when_the_platform_is_prepared(
    storage: Storage,
) -> None:
    """As rows written before schema 0005: photos in the blob store, rows without hashes."""
    astronaut = cv2.imread(str(FACES / "astronaut.jpg"))
    smaller = cv2.resize(astronaut, (307, 307), interpolation=cv2.INTER_AREA)
    labelled = [
        ((FACES / "astronaut.jpg").read_bytes(), "happy"),
        (cv2.imencode(".jpg", smaller)[1].tobytes(), "negative"),
        (different_faces()[1], "neutral"),
    ]
    async with storage.sessions.begin() as session:
        await ensure_users(session, [9])
        for n, (data, label) in enumerate(labelled):
            sha, key = await put_photo(session, storage.blobs, data)
            box, width, height, _ = find_one_face(data, 40_000_000)
            item = Contribution(sha, key, label, box, width, height, len(data), f"f{n}")
            assert await add_contribution(session, 9, item) is Added.NEW
    assert await hash_old_contributions(storage) == 3
    assert await hash_old_contributions(storage) == 0
    async with storage.sessions() as session:
        rows = {s.label: s for s in await session.scalars(select(Sample))}
        assert {label: s.near_conflict for label, s in rows.items()} == {
            "happy": True,
            "negative": True,
            "neutral": False,
        }
        assert all(s.phash is not None for s in rows.values())
