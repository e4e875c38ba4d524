"""Queries over the `samples` table: the dataset."""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    cast,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import BIT, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import Bits, Sample, User
from emobot.face_hash import BLOCK_BITS, BLOCK_MAX, PHASH_BITS, PHASH_MAX, FaceHash
from emobot.labels import FER_TO_CLASS


async def _stored_shas(session: AsyncSession, shas: Iterable[str], *where: Any) -> set[str]:
    shas = list(shas)
    found: set[str] = set()
    for start in range(0, len(shas), 5000):
        chunk = shas[start : start + 5000]
        statement = select(Sample.sha256).where(Sample.sha256.in_(chunk), *where)
        found.update(await session.scalars(statement))
    return found


async def existing_shas(session: AsyncSession, shas: Iterable[str]) -> set[str]:
    return await _stored_shas(session, shas)


async def unhashed_shas(session: AsyncSession, shas: Iterable[str]) -> set[str]:
    """Of `shas`, those stored without near-copy hashes."""
    return await _stored_shas(session, shas, Sample.phash.is_(None))


async def insert_samples(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping any whose content is already stored; returns how many were new."""
    if not rows:
        return 0
    statement = insert(Sample).on_conflict_do_nothing(index_elements=["sha256"])
    result = await session.execute(statement.returning(Sample.id), list(rows))
    return len(result.all())


async def ensure_users(session: AsyncSession, user_ids: Iterable[int]) -> None:
    ids = sorted(set(user_ids))
    if ids:
        statement = insert(User).on_conflict_do_nothing(index_elements=["id"])
        await session.execute(statement, [{"id": i} for i in ids])


async def fer2013_origins(
    session: AsyncSession,
) -> list[tuple[int, list[str], dict[str, Any] | None]]:
    """(id, origins, ferplus_votes) of every FER2013 sample, whatever its status."""
    result = await session.execute(
        select(Sample.id, Sample.origins, Sample.ferplus_votes).where(Sample.source == "fer2013")
    )
    return [tuple(row) for row in result.all()]  # type: ignore[misc]


async def set_votes(session: AsyncSession, votes: dict[int, dict[str, list[int]]]) -> None:
    """Store `ferplus_votes` by sample id, in one statement (a JSON object of them all)."""
    if not votes:
        return
    payload = literal({str(k): v for k, v in votes.items()}, JSONB)
    given = func.jsonb_each(payload).table_valued("key", "value").alias("given")
    await session.execute(
        update(Sample)
        .where(Sample.id == cast(given.c.key, BigInteger))
        .values(ferplus_votes=given.c.value)
    )


def trainable() -> Any:
    """Samples training may use: active, train split, no copy in test, one label (no
    near-copy labelled otherwise either), not blank."""
    return (
        (Sample.status == "active")
        & (Sample.split == "train")
        & ~Sample.leak
        & ~Sample.label_conflict
        & ~Sample.near_conflict
        & ~Sample.blank
    )


def _near(phash: Any, block: Any, other_phash: Any, other_block: Any) -> ColumnElement[bool]:
    # The bigint pHash test comes first: it rules out nearly every row before the 256 bits of
    # BlockMean are compared (a scan of FER2013's 34,000 rows: about 27 ms on 2 busy cores).
    phash_bits = func.bit_count(cast(phash.op("#")(other_phash), BIT(PHASH_BITS)))
    block_bits = func.bit_count(block.op("#", return_type=BIT(BLOCK_BITS))(other_block))
    return phash.is_not(None) & (phash_bits <= PHASH_MAX) & (block_bits <= BLOCK_MAX)


def near_copy_of(face: FaceHash) -> ColumnElement[bool]:
    """Samples whose face crop is a near-copy of `face` (ml.near_dupes), by the stored hashes."""
    return _near(
        Sample.phash,
        Sample.block_hash,
        literal(face.phash, BigInteger),
        literal(face.block, Bits(BLOCK_BITS)),
    )


def hashes_of(rows: Iterable[Sequence[Any]]) -> list[FaceHash]:
    """The hashes of (…, phash, block_hash) rows that have them."""
    return [FaceHash(row[-2], row[-1]) for row in rows if row[-2] is not None]


async def settle_near_conflicts(session: AsyncSession, faces: Iterable[FaceHash]) -> None:
    """Samples that stopped being active (deleted, erased) no longer hold their near-copies out
    of training: a copy flagged `near_conflict` is trainable again unless another active
    near-copy with another label is left."""
    other = aliased(Sample)
    still = (
        select(other.id)
        .where(
            other.status == "active",
            other.label != Sample.label,
            _near(other.phash, other.block_hash, Sample.phash, Sample.block_hash),
        )
        .exists()
    )
    for face in faces:
        await session.execute(
            update(Sample)
            .where(Sample.near_conflict, Sample.status == "active", near_copy_of(face), ~still)
            .values(near_conflict=False)
        )


async def counts(session: AsyncSession) -> list[tuple[str, str, str, str, int]]:
    """(source, split, label, status, count) for every group present."""
    columns = (Sample.source, Sample.split, Sample.label, Sample.status)
    result = await session.execute(select(*columns, func.count()).group_by(*columns))
    return [tuple(row) for row in result.all()]  # type: ignore[misc]


async def trainable_counts(session: AsyncSession) -> dict[str, int]:
    result = await session.execute(
        select(Sample.label, func.count()).where(trainable()).group_by(Sample.label)
    )
    return dict(result.all())  # type: ignore[arg-type]


async def test_counts(session: AsyncSession) -> dict[str, int]:
    """Active test images per class: what a run is measured on."""
    result = await session.execute(
        select(Sample.label, func.count())
        .where((Sample.status == "active") & (Sample.split == "test"))
        .group_by(Sample.label)
    )
    return dict(result.all())  # type: ignore[arg-type]


async def flag_counts(session: AsyncSession) -> dict[str, int]:
    row = (
        await session.execute(
            select(
                func.count().filter(Sample.leak),
                func.count().filter(Sample.label_conflict),
                func.count().filter(Sample.blank),
                func.count().filter(Sample.near_conflict & (Sample.status == "active")),
            )
        )
    ).one()
    return {"leak": row[0], "label_conflict": row[1], "blank": row[2], "near_conflict": row[3]}


async def archive_file_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Files of the imported FER2013 archive per (split, class), before duplicate removal."""
    origin = func.jsonb_array_elements_text(Sample.origins).table_valued("value").alias("o")
    path = literal_column("o.value")
    split = func.split_part(path, "/", 1)
    folder = func.split_part(path, "/", 2)
    statement = (
        select(split, folder, func.count())
        .select_from(Sample)
        .join(origin, literal_column("true"))
        .where(Sample.source == "fer2013")
        .group_by(split, folder)
    )
    totals: dict[tuple[str, str], int] = {}
    for split_name, folder_name, n in (await session.execute(statement)).all():
        key = (split_name, FER_TO_CLASS.get(folder_name, folder_name))
        totals[key] = totals.get(key, 0) + n
    return totals


def export_query(
    source: str | None = None, split: str | None = None, status: str | None = "active"
) -> Select[tuple[Sample]]:
    statement = select(Sample).order_by(Sample.split, Sample.label, Sample.sha256)
    if source:
        statement = statement.where(Sample.source == source)
    if split:
        statement = statement.where(Sample.split == split)
    if status:
        statement = statement.where(Sample.status == status)
    return statement


async def dataset_version(session: AsyncSession) -> str:
    """Changes whenever a sample is added, deleted, relabelled or given votes: the training
    cache key."""
    row = (
        await session.execute(
            select(
                func.count(), func.count(Sample.ferplus_votes), func.max(Sample.updated_at)
            ).where(trainable())
        )
    ).one()
    stamp = row[2].strftime("%Y%m%dT%H%M%S%f") if row[2] else "empty"
    # The voted count also marks caches written before training read votes as stale.
    return f"{row[0]}-{row[1]}v-{stamp}"
