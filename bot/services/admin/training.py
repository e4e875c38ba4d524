"""/retrain: a training run queued, when the dataset can train a model."""

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession

from db.readiness import readiness
from db.registry import (
    current_training_run,
    queue_training_run,
)
from emobot.i18n import t
from emobot.settings import Settings
from ml.job_params import JobParams


async def retrain(
    session: AsyncSession,
    bot: Bot,
    settings: Settings,
    user_id: int,
    chat_id: int,
    lang: str,
    params: JobParams,
) -> None:
    """Queue a run; its progress message is the one sent here, which the trainer edits every
    epoch. Refused while a run is queued or running, and when the dataset cannot train a model
    (the trainer checks again when it starts the run)."""
    ready = await readiness(session, settings.min_train_per_class, settings.min_test_per_class)
    if not ready.ready:
        explained = ready.explain(lang, settings.fer2013_zip)
        await bot.send_message(chat_id, f"{t(lang, 'admin.retrain.refused')}\n{explained}")
        return
    run = await queue_training_run(
        session, requested_by=user_id, chat_id=chat_id, params=params.as_dict(), language=lang
    )
    if run is None:
        current = await current_training_run(session)
        await bot.send_message(
            chat_id,
            t(
                lang,
                "admin.retrain.busy",
                run=current.id if current else "?",
                status=current.status if current else "?",
            ),
        )
        return
    queued = t(lang, "admin.retrain.queued", run=run.id, arch=params.arch, epochs=params.epochs)
    promotion = (
        t(lang, "admin.retrain.promote") if params.promote else t(lang, "admin.retrain.keep")
    )
    message = await bot.send_message(chat_id, f"{queued} {promotion}")
    run.progress_message_id = message.message_id
