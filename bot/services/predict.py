"""/predict and photos outside dialogs: store the photo and queue a prediction request."""

from aiogram import Bot
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import check_header, download, incoming_image
from db.blobs import BlobStore
from db.models import PredictionRequest
from db.queue import enqueue


async def queue_photo(
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    message: Message,
    max_bytes: int,
    max_pixels: int,
) -> PredictionRequest:
    """Store the photo under its content hash and queue a request for the worker; committed
    here, so the NOTIFY wakes a worker before the user is told it is queued. Faces are the
    worker's job (it answers "no face" itself); what its header shows cannot hold a face is
    refused here, without a trip through the queue."""
    image = incoming_image(message)
    data = await download(bot, image, max_bytes)
    check_header(data, max_pixels)
    _, key = await blobs.put_content(data, content_type=image.content_type)
    request = await enqueue(
        session,
        chat_id=message.chat.id,
        user_id=message.from_user.id if message.from_user else None,
        message_id=message.message_id,
        blob_key=key,
    )
    await session.commit()
    return request
