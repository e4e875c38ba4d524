"""/predict and photos outside dialogs: store the photo and queue a prediction request; photos
over the user's cap of waiting requests are refused, and named in one notice per run of them."""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, ReplyParameters
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import check_header, download, incoming_image
from db.blob_refs import put_photo
from db.blobs import BlobStore
from db.models import PredictionRequest
from db.queue import enqueue, waiting_for
from emobot.i18n import t

log = logging.getLogger(__name__)


async def queue_photo(
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    message: Message,
    max_bytes: int,
    max_pixels: int,
    lang: str,
    *,
    photo: Message | None = None,
) -> PredictionRequest:
    """Store the photo under its content hash and queue a request for the worker; committed
    here, so the NOTIFY wakes a worker before the user is told it is queued. Faces are the
    worker's job (it answers "no face" itself); what its header shows cannot hold a face is
    refused here, without a trip through the queue.

    The answer replies to `message`, in its forum topic; the photo is `photo` when that is
    another message (a group's reply to a photo asking for it), `message` otherwise."""
    image = incoming_image(photo or message)
    data = await download(bot, image, max_bytes)
    check_header(data, max_pixels)
    return await store_and_enqueue(
        session,
        blobs,
        message,
        data,
        image.content_type,
        lang,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        file_id=image.file_id,
    )


async def store_and_enqueue(
    session: AsyncSession,
    blobs: BlobStore,
    message: Message,
    data: bytes,
    content_type: str,
    lang: str,
    **fields: Any,
) -> PredictionRequest:
    """Store `data` under its content hash and queue a request answering `message` (with the
    request's other `fields`); committed here, so the NOTIFY wakes a worker before the user is
    told it is queued."""
    # Uploaded before the transaction: put_photo then finds it, under its lock.
    await blobs.put_content(data, content_type=content_type)
    _, key = await put_photo(session, blobs, data, content_type)
    request = await enqueue(
        session,
        chat_id=message.chat.id,
        user_id=message.from_user.id if message.from_user else None,
        message_id=message.message_id,
        blob_key=key,
        language=lang,
        **fields,
    )
    await session.commit()
    return request


@dataclass
class _Run:
    chat_id: int
    first_message_id: int
    lang: str
    limit: int
    count: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class SkippedPhotos:
    """Photos not queued because their sender has `limit` requests waiting already.

    A run of them gets one notice, a reply to its first photo that counts the others, sent once
    no photo has joined the run for `quiet_s`. While a run is open every photo of that user
    joins it, even if answers arrived meanwhile: the photos it counts are then exactly the ones
    sent from its first on, so the notice names every skipped photo.
    """

    def __init__(self, quiet_s: float = 1.0) -> None:
        self.quiet_s = quiet_s
        self._runs: dict[int, _Run] = {}

    async def should_skip(self, session: AsyncSession, user_id: int, limit: int) -> bool:
        return user_id in self._runs or await waiting_for(session, user_id) >= limit

    def skip(self, bot: Bot, user_id: int, message: Message, lang: str, limit: int) -> None:
        run = self._runs.get(user_id)
        if run is None:
            run = self._runs[user_id] = _Run(message.chat.id, message.message_id, lang, limit)
            run.task = asyncio.create_task(self._notice(bot, user_id, run))
        run.count += 1

    async def _notice(self, bot: Bot, user_id: int, run: _Run) -> None:
        seen = -1
        while seen != run.count:
            seen = run.count
            await asyncio.sleep(self.quiet_s)
        del self._runs[user_id]
        key = "predict.skipped_one" if run.count == 1 else "predict.skipped_many"
        text = t(run.lang, key, count=run.count, more=run.count - 1, limit=run.limit)
        reply = ReplyParameters(message_id=run.first_message_id, allow_sending_without_reply=True)
        try:
            await bot.send_message(run.chat_id, text, reply_parameters=reply)
        except TelegramAPIError:
            log.exception("the notice of %d skipped photos was not delivered", run.count)
