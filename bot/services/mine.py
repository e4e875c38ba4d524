"""/mine: a contributor's photos, paged, and deleting them (rows and blobs)."""

import logging
import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.blobs import BlobStore
from db.contributions import counts_by_label, delete_contributions, list_contributions
from db.models import Sample

log = logging.getLogger(__name__)

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
    count, unused = await delete_contributions(session, contributor_id, sample_id)
    await session.commit()
    for key in unused:
        try:
            await blobs.delete(key)
        except Exception:  # the row is deleted already: a left-over blob is only space
            log.exception("could not remove blob %s", key)
    return count
