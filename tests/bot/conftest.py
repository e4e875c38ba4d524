"""The bot end to end: the real Dispatcher polls the fake Bot API over HTTP, with the test
database and moto's S3 behind it. Photos come from tests/data/faces."""

# isort: off
# First, before aiogram: its types built lazily, as in the bot process (bot/lazy_aiogram.py).
import bot  # noqa: F401

# isort: on
import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from aiogram import Bot, Dispatcher, Router
from sqlalchemy import select

from bot.app import build_bot, build_dispatcher
from db.engine import Storage
from db.models import Sample
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall, FakeUser
from tests.conftest import fer_face

FACES = Path(__file__).parents[1] / "data" / "faces"
ADMIN = 1000  # the `settings` fixture's ADMIN_IDS


@dataclass
class Photos:
    one_face: bytes
    no_face: bytes
    three_faces: bytes
    variants: list[bytes] = field(default_factory=list)  # one face each, four different faces
    # one_face re-encoded at JPEG quality 40, at 60 % of its size, brighter: near-copies of its
    # face (at quality 30 the detector finds a second, false face; at half size the face is
    # under the 48 px a contribution needs).
    copies: list[bytes] = field(default_factory=list)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def different_faces() -> list[bytes]:
    """Four one-face photos, no two of them near-copies (ml.near_dupes) of each other or of
    astronaut.jpg: the astronaut mirrored, Grace Hopper (matplotlib's sample), Grace Hopper
    cropped and mirrored, a FER2013 face at 96×96 (taken whole as a face crop)."""
    astronaut = cv2.imread(str(FACES / "astronaut.jpg"))
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    face = cv2.imdecode(np.frombuffer(fer_face(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return [
        _jpeg(cv2.flip(astronaut, 1), 90),
        _jpeg(hopper, 90),
        _jpeg(cv2.flip(hopper[40:480, 40:480], 1), 90),
        _jpeg(cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC), 95),
    ]


@pytest.fixture(scope="session")
def photos() -> Photos:
    astronaut = cv2.imread(str(FACES / "astronaut.jpg"))
    return Photos(
        one_face=(FACES / "astronaut.jpg").read_bytes(),
        no_face=(FACES / "coffee.jpg").read_bytes(),
        three_faces=(FACES / "three_faces.jpg").read_bytes(),
        variants=different_faces(),
        copies=[
            _jpeg(astronaut, 40),
            _jpeg(cv2.resize(astronaut, (307, 307), interpolation=cv2.INTER_AREA), 90),
            _jpeg(cv2.add(astronaut, np.full_like(astronaut, 30)), 90),
        ],
    )


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


class BotHarness:
    """The fake Bot API, and the bot polling it; `restart()` builds a new Bot and Dispatcher
    over the same database, as a process restart would."""

    def __init__(
        self,
        emulator: BotAPIEmulator,
        server: BotAPIServer,
        storage: Storage,
        settings: Settings,
        **dispatcher_options: object,
    ) -> None:
        self.emulator = emulator
        self.server = server
        self.storage = storage
        self.settings = settings.model_copy(update={"telegram_api_url": server.url})
        self.options = dispatcher_options
        self.bot: Bot | None = None
        self.dispatcher: Dispatcher | None = None
        self._polling: asyncio.Task[None] | None = None

    async def start(self, *routers: Router) -> None:
        self.bot = build_bot(self.settings)
        self.emulator.polled = False
        self.dispatcher = build_dispatcher(
            self.storage, self.settings, extra_routers=routers, **self.options
        )
        self._polling = asyncio.create_task(
            self.dispatcher.start_polling(self.bot, polling_timeout=1, handle_signals=False)
        )
        # Started once it polls: the startup hooks (every command menu) have run by then.
        async with asyncio.timeout(10):
            while not self.emulator.polled:  # noqa: ASYNC110 - a flag, no event
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.dispatcher is not None and self._polling is not None:
            if not self._polling.done():
                await self.dispatcher.stop_polling()
            await self._polling
        self._polling = None

    async def restart(self) -> None:
        await self.stop()
        self.emulator.commands.clear()
        await self.start()

    def user(self, user_id: int, name: str = "Test", language_code: str | None = "ru") -> FakeUser:
        return self.emulator.user(user_id, name, language_code=language_code)

    async def reply(
        self,
        user: FakeUser,
        predicate: Callable[[BotCall], bool] | None = None,
        seconds: float = 15,
    ) -> BotCall:
        return await self.emulator.wait_for(user.id, predicate, seconds)

    async def samples(self) -> list[Sample]:
        async with self.storage.sessions() as session:
            return list(await session.scalars(select(Sample).order_by(Sample.id)))


@asynccontextmanager
async def running_harness(
    storage: Storage, settings: Settings, **dispatcher_options: object
) -> AsyncIterator[BotHarness]:
    """A fake Bot API of its own and the bot polling it, stopped when the block ends."""
    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:
        harness = BotHarness(emulator, server, storage, settings, **dispatcher_options)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


@pytest.fixture
async def harness(storage: Storage, settings: Settings) -> AsyncIterator[BotHarness]:
    async with running_harness(storage, settings) as harness:
        yield harness


# Calls that show a text: a message's own, or a picture's caption.
TEXT_METHODS = (
    "sendMessage",
    "editMessageText",
    "sendPhoto",
    "editMessageCaption",
    "editMessageMedia",
)


def text_has(*parts: str) -> Callable[[BotCall], bool]:
    """A predicate: a new message or an edit whose text contains every part."""

    def accept(call: BotCall) -> bool:
        return call.method in TEXT_METHODS and all(p in (call.text or "") for p in parts)

    return accept
