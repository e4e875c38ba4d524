"""Photos contributed through the bot: stored as `samples` (source telegram, or feedback for
faces of answers their sender confirmed or corrected; split train), listed and deleted by their
contributor."""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Sample
from db.samples import hashes_of, near_copy_of, settle_near_conflicts
from emobot.face_hash import FaceHash


class Added(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # the same bytes are in the dataset already
    RESTORED = "restored"  # the same bytes had been deleted; active again with the new label


@dataclass(frozen=True)
class Contribution:
    sha256: str
    blob_key: str
    label: str
    face_box: tuple[int, int, int, int]
    width: int
    height: int
    size_bytes: int
    origin: str  # the Telegram file_unique_id
    face: FaceHash | None = None  # None: never matched as a near-copy
    source: str = "telegram"  # or "feedback": a face of an answer, confirmed or corrected


async def is_in_dataset(session: AsyncSession, sha256: str) -> bool:
    """Whether an active sample holds these bytes."""
    found = await session.scalar(
        select(Sample.id).where(Sample.sha256 == sha256, Sample.status == "active")
    )
    return found is not None


async def sample_id_of(session: AsyncSession, sha256: str) -> int | None:
    """The active sample holding these bytes."""
    return await session.scalar(
        select(Sample.id).where(Sample.sha256 == sha256, Sample.status == "active")
    )


async def near_copy_labels(session: AsyncSession, face: FaceHash) -> set[str]:
    """The labels of the active samples whose face is a near-copy of this one."""
    return set(
        await session.scalars(
            select(Sample.label).distinct().where(near_copy_of(face), Sample.status == "active")
        )
    )


async def add_contribution(session: AsyncSession, contributor_id: int, item: Contribution) -> Added:
    """Store a contributed photo. A near-copy of an active sample with the same label is not
    stored again (DUPLICATE, as for the same bytes); one with another label is stored, and it
    and the samples it copies are flagged `near_conflict`: left out of training."""
    if item.face is not None and item.label in await near_copy_labels(session, item.face):
        return Added.DUPLICATE
    values = {
        "blob_key": item.blob_key,
        "label": item.label,
        "split": "train",  # the fixed test split is FER2013's
        "source": item.source,
        "contributor_id": contributor_id,
        "face_box": list(item.face_box),
        "width": item.width,
        "height": item.height,
        "size_bytes": item.size_bytes,
        "origins": [item.origin],
        "status": "active",
        "phash": item.face.phash if item.face else None,
        "block_hash": item.face.block if item.face else None,
        "near_conflict": False,
    }
    inserted = await session.scalar(
        insert(Sample)
        .values(sha256=item.sha256, **values)
        .on_conflict_do_nothing(index_elements=[Sample.sha256])
        .returning(Sample.id)
    )
    if inserted is None:
        inserted = await session.scalar(
            update(Sample)
            .where(Sample.sha256 == item.sha256, Sample.status == "deleted")
            .values(**values)
            .returning(Sample.id)
        )
        if inserted is None:
            return Added.DUPLICATE
        outcome = Added.RESTORED
    else:
        outcome = Added.NEW
    if item.face is not None:
        await flag_near_conflicts(session, inserted, item.face, item.label)
    return outcome


async def flag_near_conflicts(
    session: AsyncSession, sample_id: int, face: FaceHash, label: str
) -> None:
    """Flag the sample and its near-copies with another label: left out of training."""
    copies = await session.scalars(
        update(Sample)
        .where(near_copy_of(face), Sample.status == "active", Sample.label != label)
        .values(near_conflict=True)
        .returning(Sample.id)
    )
    if copies.first() is not None:
        await session.execute(
            update(Sample).where(Sample.id == sample_id).values(near_conflict=True)
        )


async def counts_by_label(session: AsyncSession, contributor_id: int) -> dict[str, int]:
    result = await session.execute(
        select(Sample.label, func.count())
        .where(Sample.contributor_id == contributor_id, Sample.status == "active")
        .group_by(Sample.label)
    )
    return {label: n for label, n in result.all()}


async def list_contributions(
    session: AsyncSession, contributor_id: int, *, offset: int = 0, limit: int = 5
) -> list[Sample]:
    """Active samples of a contributor, newest first."""
    result = await session.scalars(
        select(Sample)
        .where(Sample.contributor_id == contributor_id, Sample.status == "active")
        .order_by(Sample.created_at.desc(), Sample.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(result)


async def delete_contributions(
    session: AsyncSession, contributor_id: int, sample_id: int | None = None
) -> tuple[int, list[str]]:
    """Mark one (or, with no id, every) active sample of the contributor deleted. Returns how
    many were deleted and their blob keys: the caller releases those (db.blob_refs) once this
    transaction is committed."""
    statement = (
        update(Sample)
        .where(Sample.contributor_id == contributor_id, Sample.status == "active")
        .values(status="deleted", near_conflict=False)
        .returning(Sample.blob_key, Sample.phash, Sample.block_hash)
    )
    if sample_id is not None:
        statement = statement.where(Sample.id == sample_id)
    rows = (await session.execute(statement)).all()
    await settle_near_conflicts(session, hashes_of(rows))
    return len(rows), [key for key, _, _ in rows]
