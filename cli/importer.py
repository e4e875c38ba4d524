"""Importing a dataset archive (FER2013's layout or the platform's own export) into the
database and the blob store. Idempotent: what is already stored is skipped. And the hashes of
contributed photos stored before near-copies were tracked.

Here, not in db/: it joins both sides, reading archives with ml/ and writing with db/, and
db/ imports nothing of ml/ but the class vocabulary."""

import asyncio
import csv
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.blobs import BlobStore, content_key
from db.contributions import flag_near_conflicts
from db.engine import Storage
from db.exporter import MANIFEST
from db.models import Sample
from db.samples import (
    ensure_users,
    existing_shas,
    fer2013_origins,
    insert_samples,
    set_votes,
    unhashed_shas,
)
from emobot.face_hash import FaceHash
from emobot.labels import CLASSES
from ml.faces import ImageError, looks_like_crop, whole_face
from ml.fer2013 import (
    ArchiveReport,
    Distinct,
    NearCopies,
    decode_grey,
    find_near_copies,
    group_by_content,
    is_blank,
    iter_archive,
)
from ml.ferplus import Votes
from ml.near_dupes import face_hash, photo_hash

ROWS_PER_INSERT = 1000

Progress = Callable[[int], None]

log = logging.getLogger(__name__)


@dataclass
class ImportSummary:
    report: ArchiveReport
    added: int
    already: int
    seconds: float
    hashed: int = 0  # stored images that got their near-copy hashes now

    def table(self) -> str:
        r = self.report
        lines = [
            f"{r.files:,} files read, {r.distinct:,} distinct images; "
            f"{self.added:,} added, {self.already:,} already stored ({self.seconds:.1f} s)",
            "",
            f"{'split':<6} {'class':<9} {'files':>7}",
        ]
        for split in ("train", "test"):
            for label in CLASSES:
                if n := r.per_class.get((split, label), 0):
                    lines.append(f"{split:<6} {label:<9} {n:>7,}")
        lines += [
            "",
            f"byte-identical extra copies collapsed: {r.extra_copies:,} "
            f"(in {r.duplicate_groups:,} groups)",
            f"test images with a copy in train (kept as test, never trained on): {r.leaks:,}",
            f"duplicate groups with conflicting labels: {r.conflicts_7:,} "
            f"({r.conflicts_4:,} across the 4 classes; excluded from training)",
            f"blank images: {r.blanks:,} (excluded from training)",
            f"near-copies (re-encoded, resized or edited; not byte-identical): "
            f"{r.near_images:,} images in {r.near_groups:,} groups, {r.near_leak_groups:,} of "
            f"them across train and test",
            f"near-copy groups with conflicting labels: {r.near_conflict_groups:,} "
            f"({r.near_conflict_images:,} images; excluded from training)",
        ]
        if self.hashed:
            lines.append(f"near-copy hashes added to {self.hashed:,} images stored before")
        if not self.added:
            lines.append("Nothing new: every image of this archive is already stored.")
        return "\n".join(lines)


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """The export's manifest by sha256, or nothing for an archive without one."""
    with zipfile.ZipFile(path) as archive:
        if MANIFEST not in archive.namelist():
            return {}
        text = archive.read(MANIFEST).decode("utf-8")
    return {row["sha256"]: row for row in csv.DictReader(io.StringIO(text))}


@dataclass
class _Scan:
    groups: list[Distinct]  # those that decode as images
    report: ArchiveReport
    sizes: dict[str, tuple[int, int]]
    blank: set[str]
    hashes: dict[str, FaceHash]
    near: NearCopies


def _scan(path: Path) -> _Scan:
    """Read, group and decode the archive (CPU work, run off the event loop)."""
    files = list(iter_archive(path))
    groups = group_by_content(files)
    sizes: dict[str, tuple[int, int]] = {}
    blank: set[str] = set()
    hashes: dict[str, FaceHash] = {}
    for group in groups:
        image = decode_grey(group.first.data)
        if image is None:
            continue
        sizes[group.sha256] = (image.shape[1], image.shape[0])
        if is_blank(image):
            blank.add(group.sha256)
        elif looks_like_crop(image):
            # A face crop already (FER2013's 48×48): hashed as the crop a contributed copy of
            # it gives. A larger photo (a contribution in an export) would need the detector:
            # left without hashes, never matched.
            hashes[group.sha256] = face_hash(whole_face(image).crop)
    near = find_near_copies(groups, hashes)
    report = ArchiveReport.build(files, groups, blank, near)
    return _Scan([g for g in groups if g.sha256 in sizes], report, sizes, blank, hashes, near)


def _hash_values(scan: _Scan, sha: str) -> dict[str, Any]:
    face = scan.hashes.get(sha)
    return {
        "phash": face.phash if face else None,
        "block_hash": face.block if face else None,
        "near_conflict": sha in scan.near.conflicting,
    }


def _row(group: Distinct, scan: _Scan, manifest: dict[str, str] | None) -> dict[str, Any]:
    width, height = scan.sizes[group.sha256]
    row: dict[str, Any] = {
        "sha256": group.sha256,
        "blob_key": content_key(group.sha256),
        "label": group.label,
        "fer_emotion": group.emotion,
        "split": group.split,
        "source": "fer2013",
        "origins": [f.name for f in group.files],
        "face_box": [0, 0, width, height],
        "width": width,
        "height": height,
        "size_bytes": len(group.first.data),
        "leak": group.leak,
        "label_conflict": group.conflict,
        "blank": group.sha256 in scan.blank,
        **_hash_values(scan, group.sha256),
    }
    if manifest:
        # Re-importing an export: the manifest knows what the single stored copy cannot tell.
        row["source"] = manifest["source"]
        row["fer_emotion"] = manifest["fer_emotion"] or None
        row["origins"] = manifest["origins"].split(";") if manifest["origins"] else []
        for flag in ("leak", "label_conflict", "blank"):
            row[flag] = manifest[flag] == "1"
        # Exports made before near-copies were flagged have no such column.
        row["near_conflict"] = row["near_conflict"] or manifest.get("near_conflict") == "1"
        if manifest.get("contributor_id"):
            row["contributor_id"] = int(manifest["contributor_id"])
        if manifest.get("created_at"):
            row["created_at"] = datetime.fromisoformat(manifest["created_at"])
        if manifest.get("ferplus_votes"):
            row["ferplus_votes"] = json.loads(manifest["ferplus_votes"])
    return row


async def import_archive(
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
) -> ImportSummary:
    started = time.perf_counter()
    scan = await asyncio.to_thread(_scan, path)
    manifest = await asyncio.to_thread(read_manifest, path)
    async with sessions() as session:
        stored = await existing_shas(session, (g.sha256 for g in scan.groups))
    new = [g for g in scan.groups if g.sha256 not in stored]

    limit = asyncio.Semaphore(concurrency)

    async def upload(group: Distinct) -> None:
        async with limit:
            await store.put(content_key(group.sha256), group.first.data, "image/jpeg")
        if progress:
            progress(1)

    added = 0
    # Blobs first, then their rows: a row never points at a missing blob, and a cut-off
    # import re-uploads at most one chunk.
    for start in range(0, len(new), ROWS_PER_INSERT):
        chunk = new[start : start + ROWS_PER_INSERT]
        await asyncio.gather(*(upload(g) for g in chunk))
        rows = [_row(g, scan, manifest.get(g.sha256)) for g in chunk]
        async with sessions.begin() as session:
            await ensure_users(
                session, (r["contributor_id"] for r in rows if "contributor_id" in r)
            )
            added += await insert_samples(session, rows)
    async with sessions.begin() as session:
        hashed = await _hash_stored(session, scan, stored)
    elapsed = time.perf_counter() - started
    return ImportSummary(scan.report, added, len(scan.groups) - added, elapsed, hashed)


async def _hash_stored(session: AsyncSession, scan: _Scan, stored: set[str]) -> int:
    """Give the images stored before hashes were kept (schema 0005) their hashes and near-copy
    flags: this import is where FER2013's rows are backfilled."""
    missing = await unhashed_shas(session, stored & scan.hashes.keys())
    table = Sample.__table__
    if missing:
        await session.execute(
            update(table)
            .where(table.c.sha256 == bindparam("sha"))
            .values(
                phash=bindparam("phash"),
                block_hash=bindparam("block_hash"),
                near_conflict=bindparam("near_conflict"),
            ),
            [{"sha": sha, **_hash_values(scan, sha)} for sha in sorted(missing)],
        )
    return len(missing)


@dataclass
class VotesSummary:
    files: int  # rows of the votes file
    added: int  # samples whose votes were stored (or changed) now
    already: int  # samples that had these votes already
    unmatched: int  # votes-file rows whose path no stored FER2013 image has
    without: int  # FER2013 samples left without votes

    def table(self) -> str:
        return (
            f"FER+ votes for {self.files:,} files: {self.added:,} samples got votes, "
            f"{self.already:,} had them already; {self.unmatched:,} files matched no stored "
            f"image; {self.without:,} FER2013 samples have no votes"
        )


def votes_of(origins: Iterable[str], votes: Mapping[str, Votes]) -> dict[str, list[int]] | None:
    """A sample's `ferplus_votes`: the counts of each of its archive paths that has a row."""
    found = {path: list(votes[path].counts) for path in origins if path in votes}
    return found or None


async def import_votes(
    sessions: async_sessionmaker[AsyncSession], votes: Mapping[str, Votes]
) -> VotesSummary:
    """Give every stored FER2013 image the votes of its archive paths (`origins`), read with
    `ml.ferplus.read_votes`; they replace what it had. Running it again changes nothing; an
    image none of whose paths the file has keeps its votes."""
    async with sessions.begin() as session:
        stored = await fer2013_origins(session)
        changed: dict[int, dict[str, list[int]]] = {}
        matched: set[str] = set()
        already = without = 0
        for sample_id, origins, current in stored:
            new = votes_of(origins, votes)
            if new is None:
                without += current is None
                continue
            matched.update(new)
            if new == current:
                already += 1
            else:
                changed[sample_id] = new
        await set_votes(session, changed)
    return VotesSummary(len(votes), len(changed), already, len(votes.keys() - matched), without)


async def hash_old_contributions(storage: Storage) -> int:
    """Give the contributed photos stored before near-copies were tracked (schema 0005) their
    face's hashes, and flag those that conflict with a copy; returns how many got them. Run
    where the platform is prepared (`emobot run`, compose's migrate), after the migrations:
    it needs the blob store and the face detector, which a schema revision should not. Copies
    with the same label already stored twice stay (they were accepted before this check)."""
    async with storage.sessions() as session:
        rows = (
            await session.execute(
                select(Sample.id, Sample.blob_key, Sample.face_box, Sample.label).where(
                    Sample.source == "telegram", Sample.status == "active", Sample.phash.is_(None)
                )
            )
        ).all()
    hashed = 0
    for sample_id, key, box, label in rows:
        try:
            face = await asyncio.to_thread(photo_hash, await storage.blobs.get(key), box)
        except ImageError as exc:  # stays without hashes: never matched
            log.warning("sample %s: no hashes, the photo cannot be read: %s", sample_id, exc)
            continue
        async with storage.sessions.begin() as session:
            await session.execute(
                update(Sample)
                .where(Sample.id == sample_id)
                .values(phash=face.phash, block_hash=face.block)
            )
            await flag_near_conflicts(session, sample_id, face, label)
        hashed += 1
    return hashed
