"""The model registry (`models`) and training runs (`training_runs`)."""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ModelVersion, TrainingRun
from emobot.i18n import DEFAULT_LANGUAGE

# The advisory lock registrations take turns on ("modelver" in ASCII).
REGISTER_LOCK = 0x6D6F64656C766572


class UnknownModel(LookupError):
    """No model with that version."""


async def active_model(session: AsyncSession) -> ModelVersion | None:
    return await session.scalar(select(ModelVersion).where(ModelVersion.is_active))


async def list_models(session: AsyncSession) -> list[ModelVersion]:
    return list(await session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())))


async def register_model(
    session: AsyncSession,
    *,
    blob_key: str,
    arch: str,
    metrics: dict[str, Any],
    artifacts: dict[str, Any] | None = None,
    dataset_version: str | None = None,
) -> ModelVersion:
    """Add a model with the next version number (not active until promoted).

    Two trainings registering at once (an `emobot train` beside the trainer) would both read
    the same max(version) and one would fail on the unique constraint after its whole run:
    a transaction-scoped advisory lock makes registrations take turns, and each reads the
    maximum only once the one before it has committed (or rolled back).
    """
    await session.execute(select(func.pg_advisory_xact_lock(REGISTER_LOCK)))
    version = (await session.scalar(select(func.max(ModelVersion.version)))) or 0
    model = ModelVersion(
        version=version + 1,
        blob_key=blob_key,
        arch=arch,
        metrics=metrics,
        artifacts=artifacts or {},
        dataset_version=dataset_version,
    )
    session.add(model)
    await session.flush()
    return model


async def promote(session: AsyncSession, version: int) -> ModelVersion:
    """Make `version` the active model; the previous one is deactivated in the same transaction."""
    model = await session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if model is None:
        raise UnknownModel(version)
    await session.execute(
        update(ModelVersion).where(ModelVersion.is_active).values(is_active=False)
    )
    model.is_active = True
    model.activated_at = func.now()
    await session.flush()
    return model


async def queue_training_run(
    session: AsyncSession,
    *,
    requested_by: int | None,
    chat_id: int | None,
    params: dict[str, Any] | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> TrainingRun | None:
    """Queue a run; None when one is already queued or running (a unique index decides).
    `language` is what its report will speak."""
    run = TrainingRun(
        requested_by=requested_by, chat_id=chat_id, params=params or {}, language=language
    )
    try:
        async with session.begin_nested():
            session.add(run)
            await session.flush()
    except IntegrityError:
        return None
    return run


async def current_training_run(session: AsyncSession) -> TrainingRun | None:
    return await session.scalar(
        select(TrainingRun).where(TrainingRun.status.in_(("queued", "running")))
    )


async def get_model(session: AsyncSession, version: int) -> ModelVersion:
    model = await session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if model is None:
        raise UnknownModel(version)
    return model


async def get_training_run(session: AsyncSession, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def claim_training_run(session: AsyncSession) -> TrainingRun | None:
    """Take the oldest queued run and mark it running; None when there is none.

    SKIP LOCKED: a second trainer looking at the same moment gets nothing rather than waiting.
    """
    run = await session.scalar(
        select(TrainingRun)
        .where(TrainingRun.status == "queued")
        .order_by(TrainingRun.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if run is None:
        return None
    run.status = "running"
    run.started_at = func.now()
    await session.flush()
    await session.refresh(run)
    return run


async def requeue_interrupted_runs(session: AsyncSession) -> list[int]:
    """Runs left `running` by a trainer that died go back to the queue (one trainer runs at a
    time, so at its start nothing else can be running them); they resume from their checkpoint."""
    result = await session.scalars(
        update(TrainingRun)
        .where(TrainingRun.status == "running")
        .values(status="queued")
        .returning(TrainingRun.id)
    )
    return list(result)


async def record_progress(session: AsyncSession, run_id: int, progress: dict[str, Any]) -> None:
    await session.execute(
        update(TrainingRun).where(TrainingRun.id == run_id).values(progress=progress)
    )


async def finish_training_run(
    session: AsyncSession, run_id: int, *, model_id: int | None = None, error: str | None = None
) -> None:
    """Done with its model, or failed with the error."""
    await session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id)
        .values(
            status="failed" if error is not None else "done",
            model_id=model_id,
            error=error,
            finished_at=func.now(),
        )
    )


async def mark_run_reported(session: AsyncSession, run_id: int) -> None:
    await session.execute(
        update(TrainingRun).where(TrainingRun.id == run_id).values(reported_at=func.now())
    )
