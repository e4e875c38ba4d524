"""Clips in the fake Bot API (video notes, animations, videos, reactions) and the page's
`/api/clip`, driven by a real aiogram Bot over HTTP."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest

from playground.botapi import BotAPIEmulator, BotAPIServer
from playground.web import Playground
from runtime.telegram import PLAYGROUND_TOKEN
from tests.clips import make_clip

NOTE = make_clip(["happy", "neutral"], kind="note", size=(256, 256))


@pytest.fixture
async def bot_and_emulator() -> AsyncIterator[tuple[Bot, BotAPIEmulator]]:
    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:
        bot = Bot("1:clips", session=AiohttpSession(api=TelegramAPIServer.from_base(server.url)))
        yield bot, emulator
        await bot.session.close()


async def test_clip_messages_their_files_and_reactions(
    bot_and_emulator: tuple[Bot, BotAPIEmulator],
) -> None:
    bot, emulator = bot_and_emulator
    alice = emulator.user(42, "Alice")
    note = alice.send_video_note(NOTE, duration=2)
    alice.send_animation(NOTE, duration=2)
    alice.send_video(NOTE, duration=2, file_size=30 * 1024 * 1024)
    first, gif, video = (u.message for u in await bot.get_updates(timeout=0))
    assert first.video_note is not None and first.video_note.duration == 2
    # An animation carries the same file as a document, as Telegram sends it.
    assert gif.animation is not None and gif.document is not None
    assert gif.animation.file_id == gif.document.file_id
    assert video.video is not None and video.video.file_size == 30 * 1024 * 1024
    file = await bot.get_file(first.video_note.file_id)
    assert (await bot.download_file(file.file_path)).read() == NOTE

    await bot.set_message_reaction(
        chat_id=42, message_id=note["message_id"], reaction=[{"type": "emoji", "emoji": "😁"}]
    )
    assert emulator.message(42, note["message_id"])["reactions"] == [
        {"type": "emoji", "emoji": "😁"}
    ]
    with pytest.raises(TelegramBadRequest, match="REACTION_INVALID"):
        await bot.set_message_reaction(
            chat_id=42, message_id=note["message_id"], reaction=[{"type": "emoji", "emoji": "😄"}]
        )


@pytest.mark.parametrize(
    ("name", "content_type", "data", "kind"),
    [
        ("note.mp4", "video/mp4", NOTE, "video_note"),
        ("wide.mp4", "video/mp4", make_clip(["happy"], size=(320, 240)), "video"),
        ("cat.gif", "image/gif", make_clip(["happy"], kind="gif", size=(64, 64)), "animation"),
    ],
)
async def test_the_page_sends_a_clip_as_telegram_would(
    name: str, content_type: str, data: bytes, kind: str
) -> None:
    playground = Playground(port=0, user_id=1)
    await playground.start()
    try:
        form = aiohttp.FormData()
        form.add_field("clip", data, filename=name, content_type=content_type)
        async with (
            aiohttp.ClientSession() as http,
            http.post(playground.page_url + "api/clip", data=form) as response,
        ):
            assert response.status == 200
            message = await response.json()
        assert kind in message
        if kind != "animation":
            assert message[kind]["duration"] == 1 + (kind == "video_note")
        bot = Bot(
            PLAYGROUND_TOKEN,
            session=AiohttpSession(api=TelegramAPIServer.from_base(playground.api_url)),
        )
        try:
            [update] = await bot.get_updates(timeout=0)
        finally:
            await bot.session.close()
        assert getattr(update.message, kind) is not None
    finally:
        await playground.stop()
