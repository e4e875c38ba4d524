"""Feedback on an answer: the person's verdict on each face, and, with their consent, the
faces they confirmed or corrected kept as samples (source `feedback`).

A sample is the face's crop from the photo (with a margin, so that training finds the face
again at its box), checked as a contribution is: exactly one upright face big enough in it,
and no near-copy with the same label in the dataset. The photo itself was deleted once
answered (db.retention): it is fetched again from Telegram by its file id, and used only if
its bytes are those the answer was made from."""

import asyncio
import logging
from dataclasses import dataclass

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.contribute import DETECTION, find_one_face
from bot.services.photos import IncomingImage, Rejected, download
from db.blob_refs import put_photo, release
from db.blobs import BlobStore, sha256_hex
from db.contributions import (
    Added,
    Contribution,
    add_contribution,
    delete_contributions,
    near_copy_labels,
    sample_id_of,
)
from db.feedback import verdicts
from db.models import Feedback, PredictionRequest
from emobot.face_hash import FaceHash
from ml.image_header import ImageError

log = logging.getLogger(__name__)

# Around a face's box, this share of its side on each side: the crop holds the whole head, as
# a contributed portrait does, and training's detector finds the face in it again.
MARGIN = 0.6


@dataclass(frozen=True)
class FaceCrop:
    data: bytes  # JPEG
    box: tuple[int, int, int, int]
    width: int
    height: int
    face: FaceHash


def face_crops(data: bytes, result: dict, faces: list[int], max_pixels: int) -> dict[int, FaceCrop]:
    """The crops of `faces` (indices into the answer's faces) that pass a contribution's
    checks; the others are left out (logged)."""
    # OpenCV and the detector come with the first use, as for contributions.
    import cv2

    from ml.faces import decode_image
    from ml.upright import turned

    image = turned(decode_image(data, max_pixels), result.get("turn", 0))
    height, width = image.shape[:2]
    crops = {}
    for index in faces:
        x, y, w, h = result["faces"][index]["box"]
        margin = round(max(w, h) * MARGIN)
        crop = image[
            max(0, y - margin) : min(height, y + h + margin),
            max(0, x - margin) : min(width, x + w + margin),
        ]
        ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            continue
        jpeg = encoded.tobytes()
        try:
            box, crop_width, crop_height, face = find_one_face(jpeg, max_pixels)
        except Rejected as exc:
            log.info("face %d not kept as a sample: %s", index + 1, exc.key)
            continue
        crops[index] = FaceCrop(jpeg, box, crop_width, crop_height, face)
    return crops


async def forget_sample(session: AsyncSession, blobs: BlobStore, row: Feedback) -> None:
    """A verdict changed after its face became a sample: the sample goes (a new one with the
    new label is made from the photo again)."""
    assert row.sample_id is not None
    _, keys = await delete_contributions(session, row.user_id, row.sample_id)
    row.sample_id = None
    await session.commit()
    await release(session, blobs, keys)
    await session.commit()


async def keep_faces(
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    request: PredictionRequest,
    *,
    max_bytes: int,
    max_pixels: int,
) -> int:
    """Make samples of the request's verdicts that have none yet; returns how many were made.
    Only for a person who consented (the caller checks)."""
    rows = [row for row in (await verdicts(session, request.id)).values() if row.sample_id is None]
    await session.commit()
    if not rows or request.file_id is None or request.result is None or request.user_id is None:
        return 0
    try:
        data = await download(
            bot, IncomingImage(request.file_id, "", None, "image/jpeg"), max_bytes
        )
    except Rejected as exc:
        log.info("request %d: the photo could not be fetched again: %s", request.id, exc.key)
        return 0
    if not request.blob_key.endswith(sha256_hex(data)):  # not the bytes that were answered
        log.warning("request %d: Telegram served other bytes for its photo", request.id)
        return 0
    try:
        crops = await asyncio.get_running_loop().run_in_executor(
            DETECTION, face_crops, data, request.result, [row.face for row in rows], max_pixels
        )
    except ImageError as exc:
        log.info("request %d: the photo is not readable again: %s", request.id, exc)
        return 0
    made = 0
    for row in rows:
        crop = crops.get(row.face)
        if crop is None or row.actual in await near_copy_labels(session, crop.face):
            continue  # no usable face there, or the dataset has it with this label already
        await session.commit()
        await blobs.put_content(crop.data, content_type="image/jpeg")
        sha, key = await put_photo(session, blobs, crop.data, "image/jpeg")
        item = Contribution(
            sha,
            key,
            row.actual,
            crop.box,
            crop.width,
            crop.height,
            len(crop.data),
            f"feedback:{request.id}:{row.face + 1}",
            crop.face,
            source="feedback",
        )
        if await add_contribution(session, request.user_id, item) is not Added.DUPLICATE:
            row.sample_id = await sample_id_of(session, sha)
            made += 1
        await session.commit()
    return made
