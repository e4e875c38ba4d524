"""/export: the dataset zip built in the background and sent to the chat."""

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

from bot.messages import edit_message
from db.blobs import BlobStore
from db.exporter import export_dataset
from db.retention import EXPORT_LINK_SECONDS
from emobot.i18n import t

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0


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
    document_limit: int,
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
                path,
                sessions,
                blobs,
                progress=on_progress,
                raw_ids=raw_ids,
                pseudonym_key=pseudonym_key,
            )
            size = path.stat().st_size
            reporter.cancel()
            ids = t(lang, "admin.export.raw") if raw_ids else t(lang, "admin.export.pseudonymous")
            mb = f"{size / 2**20:.1f}"
            done = t(lang, "admin.export.done", images=summary.images, size=mb, ids=ids)
            await edit_message(bot, chat_id, status.message_id, done)
            if size <= document_limit:
                await bot.send_document(chat_id, FSInputFile(path, filename=name))
                return
            await _send_link(bot, blobs, chat_id, lang, path, document_limit)
    finally:
        reporter.cancel()


# Exports running in the background; referenced here so that they are not collected mid-way.
_EXPORTS: set[asyncio.Task[None]] = set()


def start_export(bot: Bot, chat_id: int, lang: str, **export: Any) -> asyncio.Task[None]:
    """`export_to_chat` as a background job: the update's handler returns at once, so the
    bot answers the admin (and holds no database connection for the update) while the
    archive is built. A failure is logged and told in the chat."""

    async def run() -> None:
        try:
            await export_to_chat(bot, chat_id=chat_id, lang=lang, **export)
        except Exception:
            log.exception("export to chat %s failed", chat_id)
            with contextlib.suppress(Exception):
                await bot.send_message(chat_id, t(lang, "error"))

    task = asyncio.create_task(run(), name=f"export-{chat_id}")
    _EXPORTS.add(task)
    task.add_done_callback(_EXPORTS.discard)
    return task


async def _send_link(
    bot: Bot, blobs: BlobStore, chat_id: int, lang: str, path: Path, document_limit: int
) -> None:
    """An archive too big for a document: put in the store (the purge removes it once its
    link expired) and its download link sent; where the store gives no links (a local
    folder), its key in the store. Removed again when the person could not be told."""
    key = f"exports/{path.name}"
    await blobs.put(key, await asyncio.to_thread(path.read_bytes), "application/zip")
    try:
        url = await blobs.url(key, EXPORT_LINK_SECONDS)
        limit = document_limit // 2**20
        text = (
            t(lang, "admin.export.url", limit=limit, url=url)
            if url
            else t(lang, "admin.export.no_url", limit=limit, location=key)
        )
        await bot.send_message(chat_id, text)
    except BaseException:
        # Nobody knows it is there: it would only fill the store until the purge.
        await blobs.delete(key)
        raise
