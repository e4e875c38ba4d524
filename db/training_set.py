"""The samples a training run reads: trainable ones for training, active test ones for testing,
and the faces people judged in the active model's answers (feedback), held out of training
while that model is active: the next model's exam on the photos people actually send. Once
another model is active they train like any sample."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Feedback, ModelVersion, Sample
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


async def train_refs(session: AsyncSession, excluding: Sequence[int] = ()) -> list[SampleRef]:
    condition = trainable() & Sample.id.not_in(excluding) if excluding else trainable()
    return await _refs(session, condition, Sample.ferplus_votes)


@dataclass(frozen=True)
class Judged:
    """Faces kept from verdicts on one model's answers: `refs` labelled as the people said,
    `predicted` what the model answered each."""

    model_version: int | None = None
    refs: list[SampleRef] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    sample_ids: list[int] = field(default_factory=list)


async def judged_refs(session: AsyncSession) -> Judged:
    """The faces judged in the active model's answers, with their sample kept (consent)."""
    active = await session.scalar(select(ModelVersion.version).where(ModelVersion.is_active))
    if active is None:
        return Judged()
    rows = await session.execute(
        select(
            Sample.id,
            Sample.blob_key,
            Feedback.actual,
            Sample.source,
            Sample.face_box,
            Feedback.predicted,
        )
        .join(Feedback, Feedback.sample_id == Sample.id)
        .where(Feedback.model_version == active, Sample.status == "active")
        .order_by(Sample.id)
    )
    judged = Judged(active)
    for sample_id, blob_key, actual, source, box, predicted in rows.all():
        judged.refs.append(SampleRef(blob_key, actual, source, box))
        judged.predicted.append(predicted)
        judged.sample_ids.append(sample_id)
    return judged


async def test_refs(session: AsyncSession) -> list[SampleRef]:
    """Every active test sample, flags or not: the test split is measured as it is, by its
    stored labels (FER+ votes of test images are the protocol's ferplus-test, never targets)."""
    return await _refs(session, (Sample.status == "active") & (Sample.split == "test"))


@dataclass(frozen=True)
class TrainingSet:
    train: list[SampleRef]
    test: list[SampleRef]
    version: str  # the cache key of what `train`, `test` and `judged` hold
    judged: Judged = field(default_factory=Judged)


async def read_training_set(sessions: async_sessionmaker[AsyncSession]) -> TrainingSet:
    """Training refs, test refs and their version, read in one REPEATABLE READ snapshot: in
    read-committed queries a sample added or erased between them would make the version (the
    cache key) disagree with the refs, and a cache could keep an erased face or miss a new
    one under a key that claims otherwise."""
    async with sessions() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        judged = await judged_refs(session)
        train = await train_refs(session, judged.sample_ids)
        test = await test_refs(session)
        # The test split is not part of dataset_version (trainable samples only), nor which
        # of them are held out, and for which model.
        version = f"{await dataset_version(session)}-t{len(test)}"
        if judged.refs:
            version += f"-m{judged.model_version}h{len(judged.refs)}"
    return TrainingSet(train, test, version, judged)
