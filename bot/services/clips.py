"""Clips sent for prediction: video notes, GIFs (Telegram's animations), videos and video
files. What Telegram says of them is checked before anything is downloaded (getFile serves at
most 20 MB); the bytes are stored and queued as one request, which the worker reads."""

from dataclasses import dataclass
from pathlib import PurePath

from aiogram import Bot
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import IncomingImage, Rejected, download
from bot.services.predict import store_and_enqueue
from db.blobs import BlobStore
from db.models import PredictionRequest

VIDEO_TYPES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "image/gif": ".gif",
}
VIDEO_SUFFIXES = (*VIDEO_TYPES.values(), ".m4v")
MB = 1024 * 1024


@dataclass(frozen=True)
class IncomingClip:
    file: IncomingImage  # what downloading needs: the file id and the announced size
    duration: int | None  # seconds, as Telegram announces it


def is_video_document(message: Message) -> bool:
    document = message.document
    if document is None:
        return False
    name = (document.file_name or "").lower()
    return (document.mime_type or "") in VIDEO_TYPES or name.endswith(VIDEO_SUFFIXES)


def incoming_clip(message: Message) -> IncomingClip | None:
    """The clip a message carries, if any. An animation comes with a `document` too (Telegram
    sends both for old clients): it is looked at first."""
    media = message.video_note or message.animation or message.video
    if media is not None:
        mime = getattr(media, "mime_type", None) or "video/mp4"
        file = IncomingImage(media.file_id, media.file_unique_id, media.file_size, mime)
        return IncomingClip(file, media.duration)
    if is_video_document(message):
        document = message.document
        assert document is not None
        mime = document.mime_type or ""
        if mime not in VIDEO_TYPES:
            suffix = PurePath((document.file_name or "").lower()).suffix
            mime = next((m for m, s in VIDEO_TYPES.items() if s == suffix), "video/mp4")
        file = IncomingImage(
            document.file_id, document.file_unique_id, document.file_size, mime, document.file_name
        )
        return IncomingClip(file, None)
    return None


async def queue_clip(
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    message: Message,
    clip: IncomingClip,
    max_bytes: int,
    lang: str,
) -> PredictionRequest:
    """Store the clip under its content hash and queue it (committed here, so the NOTIFY wakes a
    worker). Larger than `max_bytes` by Telegram's word: refused before downloading."""
    size = clip.file.size
    if size is not None and size > max_bytes:
        raise Rejected("reject.clip_too_big", size=f"{size / MB:.1f}", limit=max_bytes // MB)
    data = await download(bot, clip.file, max_bytes)
    return await store_and_enqueue(
        session, blobs, message, data, clip.file.content_type, lang, kind="video"
    )
