"""/mine: a contributor's photos, paged, and deleting them (rows and blobs)."""

import asyncio
import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.blob_refs import release
from db.blobs import BlobNotFound, BlobStore
from db.contributions import counts_by_label, delete_contributions, list_contributions
from db.models import Sample

PAGE_SIZE = 5


@dataclass
class Page:
    counts: dict[str, int]
    samples: list[Sample]
    page: int  # 0-based, clamped to the pages there are
    pages: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def page_of(session: AsyncSession, contributor_id: int, page: int) -> Page:
    counts = await counts_by_label(session, contributor_id)
    pages = max(1, math.ceil(sum(counts.values()) / PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    samples = await list_contributions(
        session, contributor_id, offset=page * PAGE_SIZE, limit=PAGE_SIZE
    )
    return Page(counts, samples, page, pages)


async def delete(
    session: AsyncSession, blobs: BlobStore, contributor_id: int, sample_id: int | None
) -> int:
    """Delete one photo (or all with None): rows marked deleted and committed first, then the
    blobs nothing else uses are removed. Returns how many photos were deleted."""
    count, keys = await delete_contributions(session, contributor_id, sample_id)
    await session.commit()
    await release(session, blobs, keys)
    await session.commit()
    return count


async def sheet_of(blobs: BlobStore, page: Page) -> bytes:
    """The page's photos as one picture, each numbered with the id its delete button shows."""
    # NumPy (about 16 MB) comes with the first /mine, not at the bot's start.
    from ml.annotate import contact_sheet

    async def fetch(sample: Sample) -> bytes | None:
        try:
            return await blobs.get(sample.blob_key)
        except BlobNotFound:  # removed meanwhile: its cell stays grey, its number still says
            return None

    images = await asyncio.gather(*(fetch(s) for s in page.samples))
    numbers = [f"#{s.id}" for s in page.samples]
    return await asyncio.to_thread(contact_sheet, list(images), numbers)
