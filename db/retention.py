"""Photos sent for prediction are kept only until they are answered (PREDICTION_RETENTION_HOURS
longer when set): the purge lets go of the photo of every finished request past that, answered
or failed for good, and keeps the result. It is safe to run anywhere and several at once: rows
are claimed with SKIP LOCKED and blobs removed under their key's lock (see db.blob_refs).

Export archives put in the blob store for a download link are removed once the link expired.

Orphan photos are swept too: a photo is stored before its row is inserted (under its key's
lock, see db.blob_refs), so an insert that fails (the database went away, a crash) leaves a
blob under `images/` that no row points at. A photo blob older than ORPHAN_AGE_SECONDS that no
row needs (an active sample, a request keeping its photo) is removed; a younger one may belong
to a row about to be committed, and a key being written right now is locked and left alone.
The same rule also picks up what an earlier removal had to leave (the store refused).
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.blob_refs import keys_in_use, release
from db.blobs import BlobStore

BATCH = 500
EXPORTS = "exports/"
IMAGES = "images/"  # where photos are stored (db.blobs.content_key)
# How old a photo blob must be before it may be swept as an orphan: far longer than any row
# takes to be committed after its photo was stored.
ORPHAN_AGE_SECONDS = 3600
# How long a download link to an export is valid; the archive is useless after that.
EXPORT_LINK_SECONDS = 3600
_EXPORT_STAMP = re.compile(r"(\d{8}-\d{6})\.zip$")

_DUE = """
SELECT id, blob_key FROM prediction_requests
WHERE status IN ('done', 'failed') AND photo_deleted_at IS NULL
    AND finished_at <= now() - make_interval(secs => :keep)
ORDER BY finished_at, id
"""


@dataclass
class PurgeReport:
    requests: list[int] = field(default_factory=list)  # requests whose photo is no longer kept
    removed: list[str] = field(default_factory=list)  # blobs removed
    kept: list[str] = field(default_factory=list)  # blobs a sample or another request needs
    left: int = 0  # requests left for the next purge (blob being written, store failing)
    exports: list[str] = field(default_factory=list)  # expired export archives removed
    orphans: list[str] = field(default_factory=list)  # photo blobs no row needs, removed

    def lines(self, dry_run: bool = False) -> list[str]:
        """One line per blob, then a summary: what `emobot purge` prints."""
        verb, keep, gone = (
            ("would remove", "would no longer keep", "would be removed")
            if dry_run
            else ("removed", "no longer keep", "removed")
        )
        out = [f"{verb} {key}" for key in self.removed + self.exports]
        out += [f"{verb} {key} (an orphan: no row uses it)" for key in self.orphans]
        out += [f"kept {key} (a sample or a newer request uses it)" for key in self.kept]
        summary = (
            f"{len(self.requests)} prediction requests {keep} their photo: "
            f"{len(self.removed)} photos {gone}, {len(self.kept)} kept; "
            f"{len(self.exports)} expired exports {gone}"
        )
        if self.orphans:
            summary += f"; {len(self.orphans)} orphan photos {gone}"
        if self.left:
            summary += f"; {self.left} requests left for the next purge"
        return [*out, summary]


async def _purge_batch(
    session: AsyncSession, blobs: BlobStore, keep_s: float, report: PurgeReport
) -> int:
    """One batch of due requests: their blobs released, the rows marked; returns the rows
    marked."""
    rows = (
        await session.execute(
            text(_DUE + " LIMIT :limit FOR UPDATE SKIP LOCKED"), {"keep": keep_s, "limit": BATCH}
        )
    ).all()
    if not rows:
        return 0
    ids = [i for i, _ in rows]
    released = await release(session, blobs, {k for _, k in rows}, ignoring=ids)
    let_go = set(released.removed) | set(released.kept)
    done = [i for i, key in rows if key in let_go]
    await session.execute(
        text("UPDATE prediction_requests SET photo_deleted_at = now() WHERE id = ANY(:ids)"),
        {"ids": done},
    )
    report.requests += done
    report.removed += released.removed
    report.kept += released.kept
    report.left += len(rows) - len(done)
    return len(done)


async def _plan(session: AsyncSession, keep_s: float, report: PurgeReport) -> None:
    """What a purge would do, changing nothing."""
    rows = (await session.execute(text(_DUE), {"keep": keep_s})).all()
    ids = [i for i, _ in rows]
    keys = {k for _, k in rows}
    used = await keys_in_use(session, keys, ignoring=ids)
    report.requests = ids
    report.removed = sorted(keys - used)
    report.kept = sorted(used)


async def expired_exports(blobs: BlobStore, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    expired = []
    for key in await blobs.list(EXPORTS):
        stamp = _EXPORT_STAMP.search(key)
        if stamp is None:
            continue
        made = datetime.strptime(stamp.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
        if now - made > timedelta(seconds=EXPORT_LINK_SECONDS):
            expired.append(key)
    return expired


async def old_photos(blobs: BlobStore, now: datetime | None = None) -> list[str]:
    """Photo blobs stored more than ORPHAN_AGE_SECONDS before `now`."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=ORPHAN_AGE_SECONDS)
    return sorted(k for k, made in (await blobs.list_modified(IMAGES)).items() if made < cutoff)


async def _sweep_orphans(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    report: PurgeReport,
    now: datetime | None,
    dry_run: bool,
) -> None:
    old = await old_photos(blobs, now)
    for start in range(0, len(old), BATCH):
        keys = old[start : start + BATCH]
        if dry_run:
            async with sessions() as session:
                report.orphans += sorted(set(keys) - await keys_in_use(session, keys))
            continue
        async with sessions.begin() as session:
            report.orphans += (await release(session, blobs, keys)).removed


async def purge(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    *,
    retention_hours: float,
    dry_run: bool = False,
    orphans: bool = True,
    now: datetime | None = None,
) -> PurgeReport:
    """`orphans`: sweep orphan photos too (a listing of every photo blob: the workers do it
    less often than the rest); `now`: the clock ages are measured by (tests)."""
    report = PurgeReport()
    keep_s = retention_hours * 3600
    if dry_run:
        async with sessions() as session:
            await _plan(session, keep_s, report)
        report.exports = await expired_exports(blobs, now)
        if orphans:
            await _sweep_orphans(sessions, blobs, report, now, dry_run=True)
        return report
    while True:
        async with sessions.begin() as session:
            marked = await _purge_batch(session, blobs, keep_s, report)
        # A batch with nothing marked would be claimed again as it is: wait for the next purge.
        if marked < BATCH:
            break
    report.exports = await expired_exports(blobs, now)
    for key in report.exports:
        await blobs.delete(key)
    if orphans:
        await _sweep_orphans(sessions, blobs, report, now, dry_run=False)
    return report
