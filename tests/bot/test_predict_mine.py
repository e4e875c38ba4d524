"""/predict (and photos outside dialogs) queue a request; /mine lists and deletes."""

import asyncio
import io

import asyncpg
from PIL import Image
from sqlalchemy import func, select

from db.blobs import sha256_hex
from db.contributions import Contribution, add_contribution
from db.models import PredictionRequest, Sample
from db.samples import trainable
from tests.bot.conftest import BotHarness, Photos, text_has


async def requests(harness: BotHarness) -> list[PredictionRequest]:
    async with harness.storage.sessions() as session:
        return list(await session.scalars(select(PredictionRequest).order_by(PredictionRequest.id)))


async def test_predict_queues_the_photo_and_notifies(
    harness: BotHarness, photos: Photos, database_url: str
) -> None:
    listener = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("prediction_requests", lambda *args: notified.put_nowait(args[3]))
    try:
        user = harness.user(40, "Ann", "en")
        user.send_text("/predict")
        assert "Send a photo" in (await harness.reply(user)).text
        message = user.send_photo(photos.three_faces)
        action = await harness.reply(user, lambda c: c.method == "sendChatAction")
        assert action.params["action"] == "typing"
        queued = await harness.reply(user, text_has("working on it"))
        assert queued.params["reply_parameters"]["message_id"] == message["message_id"]
        [request] = await requests(harness)
        assert (request.chat_id, request.user_id, request.message_id, request.status) == (
            40,
            40,
            message["message_id"],
            "queued",
        )
        assert await harness.storage.blobs.get(request.blob_key) == photos.three_faces
        assert request.blob_key.endswith(sha256_hex(photos.three_faces))
        assert await asyncio.wait_for(notified.get(), 5) == str(request.id)
    finally:
        await listener.close()


async def test_photo_outside_a_dialog_is_queued(harness: BotHarness, photos: Photos) -> None:
    user = harness.user(41, "Иван", "ru")
    user.send_document(photos.no_face, "cup.jpg", "image/jpeg")
    assert "распознаю" in (await harness.reply(user, text_has("распознаю"))).text
    [request] = await requests(harness)
    assert await harness.storage.blobs.get(request.blob_key) == photos.no_face


async def test_predict_refuses_non_images_and_keeps_waiting(
    harness: BotHarness, photos: Photos
) -> None:
    user = harness.user(42, "Ann", "en")
    user.send_text("/predict")
    await harness.reply(user)
    user.send_text("what?")
    assert "not a photo" in (await harness.reply(user)).text
    user.send_document(b"\xff\xd8" + b"0" * (25 * 2**20), "big.jpg", "image/jpeg")
    assert "too big" in (await harness.reply(user)).text
    user.send_document(b"%PDF", "a.pdf", "application/pdf")
    assert "does not look like a picture" in (await harness.reply(user)).text
    assert await requests(harness) == [] and await harness.storage.blobs.list() == []
    user.send_photo(photos.one_face)
    await harness.reply(user, text_has("working on it"))
    assert len(await requests(harness)) == 1


async def contribute_directly(harness: BotHarness, user_id: int, count: int) -> list[str]:
    """Contributed samples written through db.contributions (the dialog is tested elsewhere)."""
    keys = []
    async with harness.storage.sessions() as session:
        from db.users import upsert_user

        await upsert_user(session, user_id, username=None, first_name="x", telegram_language="en")
        for i in range(count):
            data = f"photo {user_id} {i}".encode()
            sha, key = await harness.storage.blobs.put_content(data)
            label = ("happy", "neutral")[i % 2]
            item = Contribution(sha, key, label, (1, 2, 3, 4), 10, 10, len(data), f"u{i}")
            await add_contribution(session, user_id, item)
            keys.append(key)
        await session.commit()
    return keys


async def test_mine_lists_pages_and_deletes(harness: BotHarness) -> None:
    keys = await contribute_directly(harness, 43, 7)
    others = await contribute_directly(harness, 44, 2)
    user = harness.user(43, "Ann", "en")
    user.send_text("/mine")
    listing = await harness.reply(user)
    assert "Your photos: 7" in listing.text and "happy: 4" in listing.text
    assert "neutral: 3" in listing.text and "Page 1 of 2" in listing.text
    deletes = [b for b in listing.buttons if b["text"].startswith("🗑")]
    assert len(deletes) == 5
    user.press(listing, text="▶")
    page2 = await harness.reply(user, text_has("Page 2 of 2"))
    assert len([b for b in page2.buttons if b["text"].startswith("🗑")]) == 2

    target = page2.buttons[0]
    sample_id = int(target["text"].removeprefix("🗑 #"))
    user.press(page2, text=target["text"])
    await harness.reply(user, text_has("Your photos: 6"))
    async with harness.storage.sessions() as session:
        deleted = await session.get(Sample, sample_id)
        assert deleted is not None and deleted.status == "deleted"
        assert not await harness.storage.blobs.exists(deleted.blob_key)
        trainable_ids = set(await session.scalars(select(Sample.id).where(trainable())))
        assert sample_id not in trainable_ids and len(trainable_ids) == 8

    user.send_text("/mine")
    listing = await harness.reply(user)
    user.press(listing, text="Delete all")
    ask = await harness.reply(user, text_has("Delete all your photos (6)"))
    user.press(ask, text="Yes, delete")
    await harness.reply(user, text_has("Photos deleted: 6"))
    async with harness.storage.sessions() as session:
        active = await session.scalar(
            select(func.count()).where(Sample.contributor_id == 43, Sample.status == "active")
        )
        assert active == 0
    assert [await harness.storage.blobs.exists(k) for k in keys] == [False] * 7
    assert [await harness.storage.blobs.exists(k) for k in others] == [True] * 2
    user.send_text("/mine")
    assert "haven't sent any photos" in (await harness.reply(user)).text


def colour_png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def test_mine_shows_each_photo_with_its_number(harness: BotHarness) -> None:
    """One picture per page: the photos as thumbnails, each numbered with the id its delete
    button carries; turning the page shows the next ones in the same message."""
    colours = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (240, 240, 0), (0, 0, 0), (255,) * 3]
    colours.append((128, 0, 128))
    ids = []
    async with harness.storage.sessions() as session:
        from db.users import upsert_user

        await upsert_user(session, 46, username=None, first_name="x", telegram_language="en")
        for i, colour in enumerate(colours):
            data = colour_png(colour)
            sha, key = await harness.storage.blobs.put_content(data)
            item = Contribution(sha, key, "happy", (0, 0, 300, 200), 300, 200, len(data), f"c{i}")
            await add_contribution(session, 46, item)
            ids.append(await session.scalar(select(Sample.id).where(Sample.sha256 == sha)))
        await session.commit()
    user = harness.user(46, "Ann", "en")
    user.send_text("/mine")
    page = await harness.reply(user)
    assert page.method == "sendPhoto"
    shown = [int(b["text"].removeprefix("🗑 #")) for b in page.buttons if b["text"][0] == "🗑"]
    assert all(f"#{i}" in (page.text or "") for i in shown)
    by_id = dict(zip(ids, colours, strict=True))
    assert alike(cells(page.files["photo"], len(shown)), [by_id[i] for i in shown])
    user.press(page, text="▶")
    turned = await harness.reply(user, lambda c: c.method == "editMessageMedia")
    assert turned.message_id == page.message_id and "Page 2 of 2" in (turned.text or "")
    rest = [int(b["text"].removeprefix("🗑 #")) for b in turned.buttons if b["text"][0] == "🗑"]
    assert alike(cells(turned.files["photo"], len(rest)), [by_id[i] for i in rest])


def cells(sheet: bytes, count: int) -> list[tuple[int, int, int]]:
    """The colour at the middle of each thumbnail of a contact sheet (three a row)."""
    image = Image.open(io.BytesIO(sheet)).convert("RGB")
    columns = min(3, count)
    width = image.width // columns
    height = width + round((width - 12) / 6)  # a cell and the number under it
    found = []
    for i in range(count):
        x = (i % columns) * width + width // 2
        y = (i // columns) * height + 6 + (width - 12) // 2
        found.append(image.getpixel((x, y)))
    return found


def alike(found: list[tuple[int, int, int]], expected: list[tuple[int, int, int]]) -> bool:
    """The same colours, give or take JPEG's error."""
    return len(found) == len(expected) and all(
        max(abs(a - b) for a, b in zip(f, e, strict=True)) <= 24
        for f, e in zip(found, expected, strict=True)
    )


async def test_a_photo_captioned_predict_is_queued(harness: BotHarness, photos: Photos) -> None:
    # aiogram's Command filter reads captions too: /predict with its photo once only asked
    # for a photo.
    user = harness.user(45, "Ann", "en")
    user.send_photo(photos.one_face, caption="/predict")
    await harness.reply(user, text_has("working on it"))
    [request] = await requests(harness)
    assert await harness.storage.blobs.get(request.blob_key) == photos.one_face
