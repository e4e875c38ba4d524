"""Exporting the dataset as a zip in FER2013's layout, with a CSV manifest.

Contributors are named by a pseudonym by default: a keyed hash of their Telegram id
(`contributor_key`), the same for all of one person's photos and, with PSEUDONYM_KEY set, in
every export; without the key nobody can tell whose it is. `raw_ids` writes the Telegram ids
instead (`contributor_id`, which re-importing the export keeps). The column name says which.
"""

import asyncio
import csv
import hashlib
import hmac
import io
import json
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.blobs import BlobStore
from db.models import Sample
from db.samples import export_query

RAW_ID, PSEUDONYM = "contributor_id", "contributor_key"

# The export's list of files with their metadata (cli.importer reads it back).
MANIFEST = "manifest.csv"


def manifest_fields(raw_ids: bool) -> tuple[str, ...]:
    return (
        "sha256",
        "class",
        "split",
        "source",
        "fer_emotion",
        RAW_ID if raw_ids else PSEUDONYM,
        "created_at",
        "origins",
        "leak",
        "label_conflict",
        "blank",
        "ferplus_votes",
        "near_conflict",
    )


FETCH_AHEAD = 32

Progress = Callable[[int, int], None]


@dataclass
class ExportSummary:
    images: int
    bytes: int


# File endings by the format Pillow reads in the header; contributed images may be any of them.
SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


def image_suffix(data: bytes) -> str:
    """The file ending that matches the bytes (read from the header only), `.bin` for bytes
    that are no image Pillow knows."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return SUFFIXES.get(image.format or "", ".bin")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return ".bin"


def pseudonym(key: bytes, contributor_id: int) -> str:
    """64 bits of HMAC-SHA256: no collisions among any realistic number of contributors."""
    return hmac.new(key, str(contributor_id).encode(), hashlib.sha256).hexdigest()[:16]


def _manifest_row(sample: Sample, column: str, contributor: str) -> dict[str, str]:
    return {
        "sha256": sample.sha256,
        "class": sample.label,
        "split": sample.split,
        "source": sample.source,
        "fer_emotion": sample.fer_emotion or "",
        column: contributor,
        "created_at": sample.created_at.isoformat(),
        "origins": ";".join(sample.origins),
        "leak": str(int(sample.leak)),
        "label_conflict": str(int(sample.label_conflict)),
        "blank": str(int(sample.blank)),
        "ferplus_votes": json.dumps(sample.ferplus_votes) if sample.ferplus_votes else "",
        "near_conflict": str(int(sample.near_conflict)),
    }


async def export_dataset(
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    *,
    source: str | None = None,
    split: str | None = None,
    status: str | None = "active",
    progress: Progress | None = None,
    raw_ids: bool = False,
    pseudonym_key: SecretStr | None = None,
) -> ExportSummary:
    async with sessions() as session:
        samples = list(await session.scalars(export_query(source, split, status)))
    key = pseudonym_key.get_secret_value().encode() if pseudonym_key else secrets.token_bytes(32)

    def contributor(sample: Sample) -> str:
        if sample.contributor_id is None:
            return ""
        return str(sample.contributor_id) if raw_ids else pseudonym(key, sample.contributor_id)

    column = RAW_ID if raw_ids else PSEUDONYM
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, manifest_fields(raw_ids))
    writer.writeheader()
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for start in range(0, len(samples), FETCH_AHEAD):
            chunk = samples[start : start + FETCH_AHEAD]
            blobs = await asyncio.gather(*(store.get(s.blob_key) for s in chunk))
            for sample, data in zip(chunk, blobs, strict=True):
                name = f"{sample.split}/{sample.label}/{sample.sha256}{image_suffix(data)}"
                await asyncio.to_thread(archive.writestr, name, data)
                writer.writerow(_manifest_row(sample, column, contributor(sample)))
                written += len(data)
            if progress:
                progress(start + len(chunk), len(samples))
        archive.writestr(MANIFEST, manifest.getvalue())
    tmp.replace(path)
    return ExportSummary(len(samples), written)
