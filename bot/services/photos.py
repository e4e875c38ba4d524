"""Taking an image out of a message: which file, whether it may be an image, its bytes."""

import io
from dataclasses import dataclass, field
from pathlib import PurePath

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.types import Message
from PIL import Image

from ml.image_header import TooManyPixels, UnusableShape, check_shape, image_size

IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MB = 1024 * 1024


class Rejected(Exception):
    """An input the bot refuses; `key` and `values` make the reply (keys of emobot/locales)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class IncomingImage:
    file_id: str
    unique_id: str
    size: int | None  # what Telegram announces; checked again after downloading
    content_type: str
    name: str | None = None
    media_group_id: str | None = field(default=None, compare=False)


def incoming_image(message: Message) -> IncomingImage:
    """The image a message carries: the largest size of a photo, or an image document."""
    if message.photo:
        best = message.photo[-1]
        return IncomingImage(
            best.file_id,
            best.file_unique_id,
            best.file_size,
            "image/jpeg",
            media_group_id=message.media_group_id,
        )
    document = message.document
    if document is not None:
        name = document.file_name or ""
        mime = document.mime_type or ""
        if mime not in IMAGE_TYPES and not name.lower().endswith(IMAGE_SUFFIXES):
            raise Rejected("reject.type", name=name or mime or "?")
        content_type = mime if mime in IMAGE_TYPES else _type_from_name(name)
        return IncomingImage(
            document.file_id,
            document.file_unique_id,
            document.file_size,
            content_type,
            name,
            message.media_group_id,
        )
    raise Rejected("reject.not_photo")


def _type_from_name(name: str) -> str:
    suffix = PurePath(name.lower()).suffix
    return {".png": "image/png", ".webp": "image/webp"}.get(suffix, "image/jpeg")


def check_size(size: int | None, max_bytes: int) -> None:
    if size == 0:
        raise Rejected("reject.empty")
    if size is not None and size > max_bytes:
        raise Rejected("reject.too_big", size=f"{size / MB:.1f}", limit=max_bytes // MB)


async def download(bot: Bot, image: IncomingImage, max_bytes: int) -> bytes:
    """The file's bytes; the size is checked before (Telegram's word) and after (the bytes)."""
    check_size(image.size, max_bytes)
    try:
        buffer = await bot.download(image.file_id, destination=io.BytesIO())
    except (TelegramBadRequest, TelegramNetworkError) as exc:
        raise Rejected("reject.download") from exc
    assert isinstance(buffer, io.BytesIO)  # download() returns the destination given
    data = buffer.getvalue()
    check_size(len(data), max_bytes)
    return data


def check_header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """The image's size from its header alone; Rejected, before anything is decoded, for bytes
    that are no image, too many pixels, or a shape that cannot hold a face (1×1, 30000×10)."""
    try:
        width, height = image_size(data)
    except Image.DecompressionBombError as exc:  # Pillow refuses to even read such a header
        raise Rejected("reject.far_too_many_pixels", limit=max_pixels // 1_000_000) from exc
    if not width or not height:
        raise Rejected("reject.broken")
    try:
        check_shape(width, height, max_pixels)
    except TooManyPixels as exc:
        raise Rejected("reject.too_many_pixels", width=width, height=height) from exc
    except UnusableShape as exc:
        raise Rejected("reject.unusable", width=width, height=height) from exc
    return width, height
