"""The samples a training run reads: trainable ones for training, active test ones for testing."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Sample
from db.samples import trainable


@dataclass(frozen=True)
class SampleRef:
    blob_key: str
    label: str
    source: str
    face_box: list[Any] | None
    votes: dict[str, list[int]] | None = None  # FER+ votes per archive path, where known


async def _refs(session: AsyncSession, condition: Any, *more: Any) -> list[SampleRef]:
    columns = (Sample.blob_key, Sample.label, Sample.source, Sample.face_box, *more)
    result = await session.execute(select(*columns).where(condition).order_by(Sample.id))
    return [SampleRef(*row) for row in result.all()]


async def train_refs(session: AsyncSession) -> list[SampleRef]:
    return await _refs(session, trainable(), Sample.ferplus_votes)


async def test_refs(session: AsyncSession) -> list[SampleRef]:
    """Every active test sample, flags or not: the test split is measured as it is, by its
    stored labels (FER+ votes of test images are the protocol's ferplus-test, never targets)."""
    return await _refs(session, (Sample.status == "active") & (Sample.split == "test"))
