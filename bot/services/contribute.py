"""/contribute: checking each photo (one face, not known yet) and saving a confirmed batch."""

import asyncio
import logging
from dataclasses import asdict, dataclass

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import IncomingImage, Rejected, check_header, download
from db.blob_refs import put_photo
from db.blobs import BlobStore, sha256_hex
from db.contributions import Added, Contribution, add_contribution, is_in_dataset
from ml.faces import ImageError, decode_image, find_faces, grey
from ml.fer2013 import is_blank
from ml.upright import best_turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """A checked photo waiting for the batch to be confirmed; kept in the FSM data (JSON), so
    it survives a restart. Only Telegram's file id is kept: the bytes are fetched again on
    saving, and a discarded batch leaves nothing in the blob store."""

    file_id: str
    unique_id: str
    sha256: str
    content_type: str
    box: tuple[int, int, int, int]
    width: int
    height: int
    size: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Pending":
        return cls(**{**data, "box": tuple(data["box"])})  # type: ignore[arg-type]


# A contributed face must be at least this many pixels across (FER2013's faces are 48×48) and
# its head turned no more than this in the image plane.
MIN_FACE_SIDE = 48
MAX_ROLL_DEGREES = 45


def find_one_face(data: bytes, max_pixels: int) -> tuple[tuple[int, int, int, int], int, int]:
    """The face box and the image size; Rejected unless there is exactly one plausible face:
    upright, big enough, not a blank image taken whole."""
    check_header(data, max_pixels)
    try:
        image = decode_image(data, max_pixels)
    except ImageError as exc:
        log.info("unreadable image: %s", exc)
        raise Rejected("reject.broken") from exc
    faces = find_faces(image)
    if not faces:
        raise Rejected("reject.no_face")
    if len(faces) > 1:
        raise Rejected("reject.many_faces", faces=len(faces))
    [face] = faces
    if face.landmarks is None:  # a small image taken whole as a face crop
        if is_blank(grey(image)):
            raise Rejected("reject.no_face")
    elif turn := best_turn(image):
        raise Rejected("reject.rotated", degrees=turn)
    elif abs(face.roll) > MAX_ROLL_DEGREES:
        raise Rejected("reject.tilted", degrees=round(abs(face.roll)))
    side = min(face.box[2:])
    if side < MIN_FACE_SIDE:
        raise Rejected("reject.small_face", size=side, least=MIN_FACE_SIDE)
    return face.box, image.shape[1], image.shape[0]


async def check_photo(
    session: AsyncSession,
    bot: Bot,
    image: IncomingImage,
    pending: list[Pending],
    *,
    max_bytes: int,
    max_pixels: int,
) -> Pending:
    """Download and check one photo of the batch; Rejected with the reason otherwise."""
    data = await download(bot, image, max_bytes)
    sha = sha256_hex(data)
    if any(p.sha256 == sha for p in pending):
        raise Rejected("reject.repeat")
    if await is_in_dataset(session, sha):
        raise Rejected("reject.known")
    # Detection is CPU work: off the event loop, so other chats are served meanwhile.
    box, width, height = await asyncio.to_thread(find_one_face, data, max_pixels)
    return Pending(
        image.file_id, image.unique_id, sha, image.content_type, box, width, height, len(data)
    )


@dataclass
class Saved:
    new: int = 0
    known: int = 0
    failed: int = 0


async def save_batch(
    session: AsyncSession,
    blobs: BlobStore,
    bot: Bot,
    contributor_id: int,
    label: str,
    pending: list[Pending],
    max_bytes: int,
) -> Saved:
    """Store every photo of a confirmed batch (blob, then sample row) and commit."""
    saved = Saved()
    for item in pending:
        try:
            data = await download(
                bot,
                IncomingImage(item.file_id, item.unique_id, item.size, item.content_type),
                max_bytes,
            )
        except Rejected:
            saved.failed += 1
            continue
        if sha256_hex(data) != item.sha256:  # Telegram served other bytes than were checked
            saved.failed += 1
            continue
        sha, key = await put_photo(session, blobs, data, item.content_type)
        contribution = Contribution(
            sha, key, label, item.box, item.width, item.height, len(data), item.unique_id
        )
        outcome = await add_contribution(session, contributor_id, contribution)
        if outcome is Added.DUPLICATE:
            saved.known += 1
        else:
            saved.new += 1
    await session.commit()
    return saved
