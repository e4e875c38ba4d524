"""Which photo blobs are still needed, and removing the ones that are not.

Photos are stored under their content hash (`images/ab/abcdef…`), so one blob may be a
contributed sample, a FER2013 image and the photo of several prediction requests at once: a
blob is removed only when no active sample and no request keeping its photo points at it.

Checking rows and then deleting the blob races with a writer storing the same bytes for a new
row: the writer finds the blob there (and skips the upload), the remover, not seeing the
uncommitted row, deletes it. So writers hold a shared advisory lock on the key from storing
the blob until their row is committed (`put_photo`), and removers take it exclusively. A
remover never waits for the lock: a key being written right now is needed by that writer, so
it is left alone (a purge comes back to it later).
"""

import asyncio
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from db.blobs import BlobStore, content_key, sha256_hex
from db.models import PredictionRequest, Sample

log = logging.getLogger(__name__)

# The first half of the two-part advisory lock id ("blob" in ASCII); the second is the key's
# hash. A hash collision only makes two keys wait for each other.
LOCK_SPACE = 0x626C6F62

_TRY_LOCKS = text(
    "SELECT k FROM unnest(:keys) AS k WHERE pg_try_advisory_xact_lock(:space, hashtext(k))"
).bindparams(bindparam("keys", type_=ARRAY(Text)))


async def put_photo(
    session: AsyncSession, blobs: BlobStore, data: bytes, content_type: str | None = None
) -> tuple[str, str]:
    """Store a photo under its content key for a row this session's transaction is about to
    write; returns (sha256, key). The key stays locked against removal until the commit."""
    sha = sha256_hex(data)
    key = content_key(sha)
    await session.execute(
        text("SELECT pg_advisory_xact_lock_shared(:space, hashtext(:key))"),
        {"space": LOCK_SPACE, "key": key},
    )
    await blobs.put_content(data, content_type=content_type)
    return sha, key


async def keys_in_use(
    session: AsyncSession, keys: Collection[str], *, ignoring: Collection[int] = ()
) -> set[str]:
    """Of `keys`, those an active sample or a request keeping its photo points at; the
    requests `ignoring` (whose photo is being let go) do not count."""
    if not keys:
        return set()
    used = set(
        await session.scalars(
            select(Sample.blob_key).where(Sample.blob_key.in_(keys), Sample.status == "active")
        )
    )
    requests = select(PredictionRequest.blob_key).where(
        PredictionRequest.blob_key.in_(keys), PredictionRequest.photo_deleted_at.is_(None)
    )
    if ignoring:
        requests = requests.where(PredictionRequest.id.not_in(ignoring))
    return used | set(await session.scalars(requests))


@dataclass
class Released:
    """What `release` did with each key it was given."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # still needed by another row
    busy: list[str] = field(default_factory=list)  # being written now: left for later
    failed: list[str] = field(default_factory=list)  # the blob store refused: left for later


async def release(
    session: AsyncSession,
    blobs: BlobStore,
    keys: Iterable[str],
    *,
    ignoring: Collection[int] = (),
) -> Released:
    """Remove the blobs of `keys` nothing needs any more. Run it in a transaction after the
    rows that used the keys are gone (or marked); the locks it takes last until the commit."""
    wanted = sorted(set(keys))
    result = Released()
    if not wanted:
        return result
    locked = set(await session.scalars(_TRY_LOCKS, {"keys": wanted, "space": LOCK_SPACE}))
    used = await keys_in_use(session, locked, ignoring=ignoring)
    doomed = sorted(locked - used)
    outcomes = await asyncio.gather(*(blobs.delete(k) for k in doomed), return_exceptions=True)
    for key, outcome in zip(doomed, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.warning("could not remove blob %s: %r", key, outcome)
            result.failed.append(key)
        else:
            result.removed.append(key)
    result.kept = sorted(locked & used)
    result.busy = [k for k in wanted if k not in locked]
    return result
