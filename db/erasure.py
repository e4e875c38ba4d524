"""Erasing a person: `/forget`, `emobot forget`, and withdrawing consent.

Rows go first, in the caller's transaction; once that is committed, the blobs they used are
removed unless another row still needs them (another person's sample or request with the same
bytes, a FER2013 image), see db.blob_refs.
"""

from dataclasses import dataclass, field

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.blob_refs import Released, release
from db.blobs import BlobStore
from db.fsm import delete_user_states
from db.models import PredictionRequest, Sample, TrainingRun, User
from db.retention import EXPORTS
from db.samples import hashes_of, settle_near_conflicts


@dataclass
class Erased:
    contributions: int = 0  # sample rows, deleted earlier through /mine or not
    predictions: int = 0  # prediction requests, with their results
    dialogs: int = 0  # FSM state rows
    user: bool = False  # the user row (name, username, languages, consent)
    blobs: Released = field(default_factory=Released)
    exports: list[str] = field(default_factory=list)  # export archives that may hold them


async def erase_rows(session: AsyncSession, user_id: int) -> tuple[Erased, set[str]]:
    """Delete every row about the person; returns the counts and the blob keys those rows used."""
    deleted = (
        await session.execute(
            delete(Sample)
            .where(Sample.contributor_id == user_id)
            .returning(Sample.blob_key, Sample.phash, Sample.block_hash)
        )
    ).all()
    await settle_near_conflicts(session, hashes_of(deleted))
    samples = [key for key, _, _ in deleted]
    # chat_id too: a request from a private chat is the person's even without a user id.
    requests = list(
        await session.scalars(
            delete(PredictionRequest)
            .where(or_(PredictionRequest.user_id == user_id, PredictionRequest.chat_id == user_id))
            .returning(PredictionRequest.blob_key)
        )
    )
    # Training runs an admin asked for stay (they made models) without saying who asked.
    await session.execute(
        update(TrainingRun)
        .where(or_(TrainingRun.requested_by == user_id, TrainingRun.chat_id == user_id))
        .values(requested_by=None, chat_id=None, progress_message_id=None)
    )
    dialogs = await delete_user_states(session, user_id)
    user = await session.scalar(delete(User).where(User.id == user_id).returning(User.id))
    erased = Erased(len(samples), len(requests), dialogs, user is not None)
    return erased, set(samples) | set(requests)


async def forget(session: AsyncSession, blobs: BlobStore, user_id: int) -> Erased:
    """Erase the person: rows committed first, then their blobs and every export archive (an
    admin's download that may contain their photos; the export can be made again)."""
    erased, keys = await erase_rows(session, user_id)
    await session.commit()
    erased.blobs = await release(session, blobs, keys)
    await session.commit()
    erased.exports = await blobs.list(EXPORTS)
    for key in erased.exports:
        await blobs.delete(key)
    return erased


async def erase_contributions(session: AsyncSession, blobs: BlobStore, user_id: int) -> int:
    """Delete the person's samples (rows and blobs) and nothing else; returns how many were
    active (rows deleted earlier through /mine go too)."""
    rows = (
        await session.execute(
            delete(Sample)
            .where(Sample.contributor_id == user_id)
            .returning(Sample.blob_key, Sample.status, Sample.phash, Sample.block_hash)
        )
    ).all()
    await settle_near_conflicts(session, hashes_of(rows))
    await session.commit()
    await release(session, blobs, {row[0] for row in rows})
    await session.commit()
    return sum(row[1] == "active" for row in rows)
