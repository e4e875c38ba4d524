"""The model registry (`models`) and training runs (`training_runs`)."""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ModelVersion, TrainingRun


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
    """Add a model with the next version number (not active until promoted)."""
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
) -> TrainingRun | None:
    """Queue a run; None when one is already queued or running (a unique index decides)."""
    run = TrainingRun(requested_by=requested_by, chat_id=chat_id, params=params or {})
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
