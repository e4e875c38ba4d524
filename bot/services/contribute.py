"""/contribute: checking each photo (one face, not known yet) and saving a confirmed batch."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.photos import IncomingImage, Rejected, check_header, download
from bot.states import Contribute
from db.blob_refs import put_photo
from db.blobs import BlobStore, sha256_hex
from db.contributions import (
    Added,
    Contribution,
    add_contribution,
    is_in_dataset,
    near_copy_labels,
)
from db.fsm import PostgresStorage
from emobot.face_hash import FaceHash
from ml.image_header import ImageError

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
    # The face crop's perceptual hashes (ml.near_dupes), block as hex; None in batches checked
    # before hashes were kept.
    phash: int | None = None
    block: str | None = None

    @property
    def face(self) -> FaceHash | None:
        if self.phash is None or self.block is None:
            return None
        return FaceHash(self.phash, bytes.fromhex(self.block))

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Pending":
        return cls(**{**data, "box": tuple(data["box"])})  # type: ignore[arg-type]


# A contributed face must be at least this many pixels across (FER2013's faces are 48×48) and
# its head turned no more than this in the image plane.
MIN_FACE_SIDE = 48
MAX_ROLL_DEGREES = 45
# One thread checks contributions and feedback's faces: each thread holds a detector of its own
# (about 50 MB, see ml.faces), and the default executor's six threads would each make one under
# a few contributions at once. Contributions are few; one at a time takes tens of ms.
DETECTION = ThreadPoolExecutor(1, thread_name_prefix="contribution")


def find_one_face(
    data: bytes, max_pixels: int
) -> tuple[tuple[int, int, int, int], int, int, FaceHash]:
    """The face box, the image size and the hashes of the face crop; Rejected unless there is
    exactly one plausible face: upright, big enough, not a blank image taken whole."""
    # The detector and OpenCV (about 55 MB) come with the first contribution, not at the
    # bot's start: photos sent for a prediction only have their header read.
    from ml.faces import decode_image, grey
    from ml.fer2013 import is_blank
    from ml.near_dupes import face_hash
    from ml.upright import upright_faces

    check_header(data, max_pixels)
    try:
        image = decode_image(data, max_pixels)
    except ImageError as exc:
        log.info("unreadable image: %s", exc)
        raise Rejected("reject.broken") from exc
    faces, _, turn = upright_faces(image)
    if not faces:
        raise Rejected("reject.no_face")
    if len(faces) > 1:
        raise Rejected("reject.many_faces", faces=len(faces))
    [face] = faces
    if face.landmarks is None:  # a small image taken whole as a face crop
        if is_blank(grey(image)):
            raise Rejected("reject.no_face")
    elif turn:
        raise Rejected("reject.rotated", degrees=turn)
    elif abs(face.roll) > MAX_ROLL_DEGREES:
        raise Rejected("reject.tilted", degrees=round(abs(face.roll)))
    side = min(face.box[2:])
    if side < MIN_FACE_SIDE:
        raise Rejected("reject.small_face", size=side, least=MIN_FACE_SIDE)
    # The crop training cuts from this photo (ml.train_job.sample_face finds the same face
    # again at the stored box): copies are judged by the face they train on.
    return face.box, image.shape[1], image.shape[0], face_hash(face.crop)


async def check_photo(
    session: AsyncSession,
    bot: Bot,
    image: IncomingImage,
    pending: list[Pending],
    label: str,
    *,
    max_bytes: int,
    max_pixels: int,
) -> tuple[Pending, bool]:
    """Download and check one photo of the batch; Rejected with the reason otherwise. True
    with it when a near-copy of it is in the dataset with another label: it is kept, but
    neither is trained on."""
    data = await download(bot, image, max_bytes)
    sha = sha256_hex(data)
    if any(p.sha256 == sha for p in pending):
        raise Rejected("reject.repeat")
    if await is_in_dataset(session, sha):
        raise Rejected("reject.known")
    # No transaction (nor its connection) is held through the detection: it takes a while.
    await session.commit()
    # Detection is CPU work: off the event loop, so other chats are served meanwhile.
    box, width, height, face = await asyncio.get_running_loop().run_in_executor(
        DETECTION, find_one_face, data, max_pixels
    )
    if any(p.face is not None and p.face.is_copy(face) for p in pending):
        raise Rejected("reject.repeat_copy")
    labels = await near_copy_labels(session, face)
    await session.commit()
    if label in labels:
        raise Rejected("reject.known_copy")
    item = Pending(
        image.file_id,
        image.unique_id,
        sha,
        image.content_type,
        box,
        width,
        height,
        len(data),
        face.phash,
        face.block.hex(),
    )
    return item, bool(labels)


async def add_pending(state: FSMContext, item: Pending) -> int | None:
    """Add a checked photo to the batch in the dialog's data; returns how many it holds now,
    or None when the batch was closed meanwhile (done on another replica).

    The photo was checked against the batch as read before its download and detection, which
    take seconds with no transaction open; meanwhile another photo of the album may have been
    added, by another replica too (aiogram's per-user lock is per process). So the data is
    read again under a row lock on the dialog's row and written back in the same short
    transaction, which the reply commits. A row lock rather than an append-only table of
    pending photos or a compare-and-set: the batch stays in the dialog's data (a restart,
    /cancel, erasure and the other replica see it as before, no schema change), the lock is
    held for two statements, not across the slow work, and a writer never has to retry."""
    storage = state.storage
    assert isinstance(storage, PostgresStorage)
    current, data = await storage.lock(state.key)
    if current == Contribute.confirm.state:
        raise Rejected("contribute.confirm_first")
    if current != Contribute.photos.state:
        return None
    pending = [Pending.from_json(p) for p in data.get("pending", [])]
    # Repeats of a photo added since the first read (the album's photos are checked at once).
    if any(p.sha256 == item.sha256 for p in pending):
        raise Rejected("reject.repeat")
    face = item.face
    if face is not None and any(p.face is not None and p.face.is_copy(face) for p in pending):
        raise Rejected("reject.repeat_copy")
    pending.append(item)
    await state.set_data({**data, "pending": [p.as_json() for p in pending]})
    return len(pending)


async def offer_done(state: FSMContext, message_id: int) -> int | None:
    """Remember the message whose "Done" button is on show; returns the one before it (its
    button goes). Under the dialog row's lock, as `add_pending`: written back from an earlier
    read, the data would drop a photo another replica added meanwhile."""
    storage = state.storage
    assert isinstance(storage, PostgresStorage)
    current, data = await storage.lock(state.key)
    if current != Contribute.photos.state:
        return None
    await state.set_data({**data, "offer": message_id})
    return data.get("offer")


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
    """Store every photo of a confirmed batch (blob, then sample row), each committed in a
    short transaction of its own: none is open through a download or an upload."""
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
        # A copy saved since the check (another batch): known, and no blob stored for it.
        if item.face is not None and label in await near_copy_labels(session, item.face):
            saved.known += 1
            continue
        await session.commit()
        # The upload, outside any transaction; put_photo then finds the blob (or stores it
        # again if a purge removed it meanwhile) under its lock, in the row's transaction.
        await blobs.put_content(data, content_type=item.content_type)
        sha, key = await put_photo(session, blobs, data, item.content_type)
        contribution = Contribution(
            sha,
            key,
            label,
            item.box,
            item.width,
            item.height,
            len(data),
            item.unique_id,
            item.face,
        )
        outcome = await add_contribution(session, contributor_id, contribution)
        await session.commit()
        if outcome is Added.DUPLICATE:
            saved.known += 1
        else:
            saved.new += 1
    await session.commit()
    return saved
