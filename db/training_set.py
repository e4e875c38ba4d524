"""The samples a training run reads: trainable ones for training, active test ones for testing."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Sample
from db.samples import dataset_version, trainable


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


@dataclass(frozen=True)
class TrainingSet:
    train: list[SampleRef]
    test: list[SampleRef]
    version: str  # the cache key of what `train` and `test` hold


async def read_training_set(sessions: async_sessionmaker[AsyncSession]) -> TrainingSet:
    """Training refs, test refs and their version, read in one REPEATABLE READ snapshot: in
    read-committed queries a sample added or erased between them would make the version (the
    cache key) disagree with the refs, and a cache could keep an erased face or miss a new
    one under a key that claims otherwise."""
    async with sessions() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        train = await train_refs(session)
        test = await test_refs(session)
        # The test split is not part of dataset_version (trainable samples only).
        version = f"{await dataset_version(session)}-t{len(test)}"
    return TrainingSet(train, test, version)
