"""Exporting the dataset as a zip in FER2013's layout, with a CSV manifest."""

import asyncio
import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.blobs import BlobStore
from db.importer import MANIFEST
from db.models import Sample
from db.samples import export_query

MANIFEST_FIELDS = (
    "sha256", "class", "split", "source", "fer_emotion", "contributor_id", "created_at",
    "origins", "leak", "label_conflict", "blank",
)  # fmt: skip
FETCH_AHEAD = 32

Progress = Callable[[int, int], None]


@dataclass
class ExportSummary:
    images: int
    bytes: int


# File endings by the format Pillow reads in the header; contributed images may be any of them.
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
            "TIFF": ".tif"}  # fmt: skip


def image_suffix(data: bytes) -> str:
    """The file ending that matches the bytes (read from the header only), `.bin` for bytes
    that are no image Pillow knows."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return SUFFIXES.get(image.format or "", ".bin")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return ".bin"


def _manifest_row(sample: Sample) -> dict[str, str]:
    return {
        "sha256": sample.sha256,
        "class": sample.label,
        "split": sample.split,
        "source": sample.source,
        "fer_emotion": sample.fer_emotion or "",
        "contributor_id": str(sample.contributor_id or ""),
        "created_at": sample.created_at.isoformat(),
        "origins": ";".join(sample.origins),
        "leak": str(int(sample.leak)),
        "label_conflict": str(int(sample.label_conflict)),
        "blank": str(int(sample.blank)),
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
) -> ExportSummary:
    async with sessions() as session:
        samples = list(await session.scalars(export_query(source, split, status)))
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, MANIFEST_FIELDS)
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
                writer.writerow(_manifest_row(sample))
                written += len(data)
            if progress:
                progress(start + len(chunk), len(samples))
        archive.writestr(MANIFEST, manifest.getvalue())
    tmp.replace(path)
    return ExportSummary(len(samples), written)
