"""/predict and photos outside dialogs: store the photo and queue a prediction request."""

from aiogram import Bot
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import download, incoming_image
from db.blob_refs import put_photo
from db.blobs import BlobStore
from db.models import PredictionRequest
from db.queue import enqueue


async def queue_photo(
    session: AsyncSession, blobs: BlobStore, bot: Bot, message: Message, max_bytes: int
) -> PredictionRequest:
    """Store the photo under its content hash and queue a request for the worker; committed
    here, so the NOTIFY wakes a worker before the user is told it is queued. Faces are the
    worker's job (it answers "no face" itself)."""
    image = incoming_image(message)
    data = await download(bot, image, max_bytes)
    _, key = await put_photo(session, blobs, data, image.content_type)
    request = await enqueue(
        session,
        chat_id=message.chat.id,
        user_id=message.from_user.id if message.from_user else None,
        message_id=message.message_id,
        blob_key=key,
    )
    await session.commit()
    return request
