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


async def _refs(session: AsyncSession, condition: Any) -> list[SampleRef]:
    columns = (Sample.blob_key, Sample.label, Sample.source, Sample.face_box)
    result = await session.execute(select(*columns).where(condition).order_by(Sample.id))
    return [SampleRef(*row) for row in result.all()]


async def train_refs(session: AsyncSession) -> list[SampleRef]:
    return await _refs(session, trainable())


async def test_refs(session: AsyncSession) -> list[SampleRef]:
    """Every active test sample, flags or not: the test split is measured as it is."""
    return await _refs(session, (Sample.status == "active") & (Sample.split == "test"))
