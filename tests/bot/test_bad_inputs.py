"""Every bad input a newcomer or an admin tried, as one table, through the real bot and the fake
Bot API: each gets a clear answer, nothing crashes ("something went wrong" is never said) and
nothing wrong is stored."""

import io
import struct
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from db.contributions import Contribution, add_contribution
from db.models import PredictionRequest, Sample, TrainingRun
from db.registry import register_model
from db.users import upsert_user
from playground.botapi import FakeUser
from tests.bot.conftest import ADMIN, FACES, BotHarness, png_bytes, text_has
from tests.bot.test_contribute import open_batch


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces `width`×`height` pixels and holds none: what a decompression bomb
    looks like before decoding (a real 20000×20000 PNG takes 400 MB to build)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def upside_down() -> bytes:
    return jpeg(cv2.rotate(cv2.imread(str(FACES / "astronaut.jpg")), cv2.ROTATE_180))


def small_face() -> bytes:
    """The astronaut's face cut out at 40×40: a face crop, too small to learn from."""
    face = cv2.imread(str(FACES / "astronaut.jpg"))[76:176, 173:273]
    return jpeg(cv2.resize(face, (40, 40), interpolation=cv2.INTER_AREA))


Act = Callable[[BotHarness, FakeUser], Awaitable[None]]


def predict(data: bytes, name: str = "photo.png") -> Act:
    async def act(harness: BotHarness, user: FakeUser) -> None:
        user.send_text("/predict")
        await harness.reply(user)
        user.send_document(data, name, "image/png")

    return act


def contribute(data: bytes, name: str = "photo.png") -> Act:
    async def act(harness: BotHarness, user: FakeUser) -> None:
        await open_batch(harness, user)
        user.send_document(data, name, "image/png" if name.endswith(".png") else "image/jpeg")

    return act


def command(text: str) -> Act:
    async def act(harness: BotHarness, user: FakeUser) -> None:
        user.send_text(text)

    return act


async def language_twice(harness: BotHarness, user: FakeUser) -> None:
    """Two quick taps: both callbacks carry the menu as it was before the first edit."""
    user.send_text("/language")
    menu = await harness.reply(user)
    user.press(menu, text="English")
    user.press(menu, text="English")


async def forged_buttons(harness: BotHarness, user: FakeUser) -> None:
    """Callback data no keyboard of the bot carries (a modified client)."""
    user.send_text("/language")
    menu = await harness.reply(user)
    message = harness.emulator.message(user.id, menu.message_id)
    message["reply_markup"]["inline_keyboard"][0] += [
        {"text": "xx", "callback_data": "lang:xx"},
        {"text": "english", "callback_data": "lang:english"},
        {"text": "big", "callback_data": "mine:delete:0:99999999999999999999"},
        {"text": "promote", "callback_data": "promote:99999999999999999999:1:1"},
    ]
    for forged in (
        "lang:xx",
        "lang:english",  # longer than users.language's String(2)
        "mine:delete:0:99999999999999999999",
        "promote:99999999999999999999:1:1",
    ):
        user.press(menu, data=forged)
    user.send_text("/help")


async def models_in_russian(harness: BotHarness, user: FakeUser) -> None:
    async with harness.storage.sessions.begin() as session:
        metrics = {"test_4": {"n": 7178, "balanced_accuracy": 0.786, "accuracy": 0.736}}
        await register_model(session, blob_key="models/x", arch="emonet", metrics=metrics)
    user.send_text("/models")


@dataclass(frozen=True)
class Case:
    act: Act
    answer: str  # a part of the reply
    lang: str = "en"
    unwanted: str | None = None  # must not be in the reply


UNUSABLE = "too small or too narrow to hold a face"
CASES = {
    "predict 1×1 PNG": Case(predict(png_bytes(1, 1)), f"1×1 pixel image is {UNUSABLE}"),
    "predict 30000×10 PNG": Case(
        predict(png_bytes(30000, 10)), f"30000×10 pixel image is {UNUSABLE}"
    ),
    "predict 20000×20000 PNG": Case(predict(png_header(20000, 20000)), "too large: over 40"),
    "predict 8000×8000 PNG": Case(predict(png_header(8000, 8000)), "too large: 8000×8000"),
    "predict PDF named .png": Case(predict(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj"), "can't read"),
    "contribute 1×1 PNG": Case(contribute(png_bytes(1, 1)), f"1×1 pixel image is {UNUSABLE}"),
    "contribute 30000×10 PNG": Case(contribute(png_bytes(30000, 10)), UNUSABLE),
    "contribute 20000×20000 PNG": Case(contribute(png_header(20000, 20000)), "too large"),
    "contribute upside-down face": Case(contribute(upside_down(), "down.jpg"), "turned by 180°"),
    "contribute blank 64×64": Case(contribute(png_bytes(64, 64)), "found no face"),
    "contribute 40×40 face": Case(contribute(small_face(), "small.jpg"), "40 px across"),
    "promote 99999999999999999999": Case(
        command("/promote 99999999999999999999"), "Give a version number"
    ),
    "retrain epochs=-1": Case(command("/retrain epochs=-1"), "epochs must be 1 to 500, not -1"),
    "retrain epochs=1 epochs=2": Case(
        command("/retrain epochs=1 epochs=2"), "epochs is given more than once"
    ),
    "retrain epochs=-1 in Russian": Case(
        command("/retrain epochs=-1"),
        "epochs должно быть от 1 до 500, а не -1",
        "ru",
        unwanted="must be",
    ),
    "models in Russian": Case(models_in_russian, "сбаланс. точн. 0.786 · ", "ru", "bal.acc"),
    "language button twice": Case(language_twice, "speaking English"),
    "forged button data": Case(forged_buttons, "What I can do"),
}


async def stored(harness: BotHarness) -> tuple[int, int, int, int]:
    async with harness.storage.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(table))
            for table in (Sample, PredictionRequest, TrainingRun)
        ]
    return (*counts, len(await harness.storage.blobs.list("images/")))  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_gets_a_clear_answer_and_stores_nothing(
    harness: BotHarness, name: str
) -> None:
    case = CASES[name]
    user = harness.user(ADMIN, "Admin", case.lang)
    await case.act(harness, user)
    reply = await harness.reply(user, text_has(case.answer))
    if case.unwanted:
        assert case.unwanted not in reply.text
    # Whatever else happened meanwhile, no handler failed.
    await harness.emulator.collect(user.id, 0.5)
    said = [c.text or "" for c in harness.emulator.calls_in(user.id, after=0)]
    assert not [s for s in said if "went wrong" in s or "что-то пошло не так" in s], said
    assert await stored(harness) == (0, 0, 0, 0)


async def test_export_names_files_by_their_format(harness: BotHarness) -> None:
    """GIF and BMP photos (sent as files named .jpg) come back as .gif and .bmp."""
    pictures = {}
    for fmt in ("GIF", "BMP", "PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 100, 50)).save(buffer, fmt)
        pictures[fmt] = buffer.getvalue()
    async with harness.storage.sessions.begin() as session:
        await upsert_user(session, 60, username=None, first_name="x", telegram_language="en")
        for i, data in enumerate(pictures.values()):
            sha, key = await harness.storage.blobs.put_content(data, content_type="image/jpeg")
            item = Contribution(sha, key, "happy", (0, 0, 64, 64), 64, 64, len(data), f"u{i}")
            await add_contribution(session, 60, item)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    document = await harness.reply(admin, lambda c: c.method == "sendDocument", 30)
    with zipfile.ZipFile(io.BytesIO(document.files["document"])) as archive:
        suffixes = sorted(n.rsplit(".", 1)[1] for n in archive.namelist() if n != "manifest.csv")
    assert suffixes == ["bmp", "gif", "jpg", "png"]
