"""Admin commands: dataset statistics, export to the chat, retraining and the model registry."""

import asyncio
import contextlib
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import FSInputFile
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.texts import label_name, t
from db.blobs import BlobStore
from db.exporter import export_dataset
from db.models import ModelVersion
from db.queue import depth
from db.registry import (
    active_model,
    current_training_run,
    list_models,
    promote,
    queue_training_run,
)
from db.retention import EXPORT_LINK_SECONDS
from db.stats import dataset_stats
from ml.labels import CLASSES
from ml.params import JobParams

log = logging.getLogger(__name__)

# Bots may upload documents up to 50 MB; bigger exports go through the blob store.
DOCUMENT_LIMIT = 50 * 1024 * 1024
PROGRESS_EVERY_S = 2.0


def _headline(metrics: dict[str, Any]) -> tuple[str, str]:
    """Balanced accuracy and accuracy on test-4, as the trainer records them."""
    test = metrics.get("test_4", metrics)
    return tuple(  # type: ignore[return-value]
        f"{test[k]:.3f}" if isinstance(test.get(k), float) else "–"
        for k in ("balanced_accuracy", "accuracy")
    )


def _model_line(lang: str, model: ModelVersion) -> str:
    balanced, accuracy = _headline(model.metrics)
    return t(
        lang,
        "admin.models.item",
        version=model.version,
        arch=model.arch,
        balanced=balanced,
        created=model.created_at.strftime("%Y-%m-%d %H:%M"),
        active=t(lang, "admin.models.active") if model.is_active else "",
    ) + (f" · acc {accuracy}" if accuracy != "–" else "")


async def stats_text(session: AsyncSession, lang: str) -> str:
    stats = await dataset_stats(session)
    rows = []
    for source, split in sorted({(s, sp) for s, sp, _ in stats.stored}):
        counts = ", ".join(
            f"{label_name(lang, c)} {stats.stored.get((source, split, c), 0)}" for c in CLASSES
        )
        rows.append(f"{source}/{split}: {counts}")
    model = await active_model(session)
    return t(
        lang,
        "admin.stats",
        table="\n".join(rows) or "–",
        deleted=stats.deleted,
        depth=await depth(session),
        model=_model_line(lang, model) if model else t(lang, "admin.no_model"),
    )


def raw_ids_asked(args: str) -> bool:
    """`/export` arguments: nothing, `ids=pseudonymous` or `ids=raw`; ValueError otherwise."""
    choice = {"": False, "ids=pseudonymous": False, "ids=raw": True}.get(args.strip().lower())
    if choice is None:
        raise ValueError(args)
    return choice


async def export_to_chat(
    bot: Bot,
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    chat_id: int,
    lang: str,
    *,
    workdir: Path,
    document_limit: int = DOCUMENT_LIMIT,
    raw_ids: bool = False,
    pseudonym_key: SecretStr | None = None,
) -> None:
    """Write the dataset zip, showing progress by editing one message, then send it as a
    document, or as a download URL from the blob store when it is too big for a document
    (removed by the purge once the URL expired)."""
    status = await bot.send_message(chat_id, t(lang, "admin.export.started"))
    progress = {"done": 0, "total": 0}

    async def report() -> None:
        shown = -1
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if progress["total"] and progress["done"] != shown:
                shown = progress["done"]
                with contextlib.suppress(TelegramBadRequest):
                    await bot.edit_message_text(
                        t(lang, "admin.export.progress", **progress),
                        chat_id=chat_id,
                        message_id=status.message_id,
                    )

    def on_progress(done: int, total: int) -> None:
        progress.update(done=done, total=total)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"emobot-dataset-{stamp}.zip"
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    reporter = asyncio.create_task(report())
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            path = Path(tmp) / name
            summary = await export_dataset(
                path, sessions, blobs, progress=on_progress, raw_ids=raw_ids,
                pseudonym_key=pseudonym_key,
            )  # fmt: skip
            size = path.stat().st_size
            reporter.cancel()
            ids = t(lang, "admin.export.raw" if raw_ids else "admin.export.pseudonymous")
            mb = f"{size / 2**20:.1f}"
            await bot.edit_message_text(
                t(lang, "admin.export.done", images=summary.images, size=mb, ids=ids),
                chat_id=chat_id,
                message_id=status.message_id,
            )
            if size <= document_limit:
                await bot.send_document(chat_id, FSInputFile(path, filename=name))
                return
            key = f"exports/{name}"
            await blobs.put(key, await asyncio.to_thread(path.read_bytes), "application/zip")
            url = await blobs.url(key, EXPORT_LINK_SECONDS)
            limit = document_limit // 2**20
            text = (
                t(lang, "admin.export.url", limit=limit, url=url)
                if url
                else t(lang, "admin.export.no_url", limit=limit, key=key)
            )
            await bot.send_message(chat_id, text)
    finally:
        reporter.cancel()


async def retrain(
    session: AsyncSession, bot: Bot, user_id: int, chat_id: int, lang: str, params: JobParams
) -> None:
    """Queue a run; its progress message is the one sent here, which the trainer edits every
    epoch. Refused while a run is queued or running."""
    run = await queue_training_run(
        session, requested_by=user_id, chat_id=chat_id, params=params.as_dict()
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
    promotion = t(lang, "admin.retrain.promote" if params.promote else "admin.retrain.keep")
    message = await bot.send_message(chat_id, f"{queued} {promotion}")
    run.progress_message_id = message.message_id
    await session.commit()


async def models_text(session: AsyncSession, lang: str) -> str:
    models = await list_models(session)
    if not models:
        return t(lang, "admin.models.empty")
    return "\n".join(_model_line(lang, m) for m in models)


async def promote_version(session: AsyncSession, version: int) -> ModelVersion:
    """Raises db.registry.UnknownModel."""
    model = await promote(session, version)
    await session.commit()
    return model
