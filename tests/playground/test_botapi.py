"""The fake Bot API, driven by a real aiogram Bot over HTTP."""

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from PIL import Image

from playground.botapi import MAX_DOWNLOAD_BYTES, BotAPIEmulator, BotAPIServer

TOKEN = "123456:TEST"


def png(width: int = 20, height: int = 10) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def emulator() -> AsyncIterator[BotAPIEmulator]:
    emulator = BotAPIEmulator()
    yield emulator


@pytest.fixture
async def bot(emulator: BotAPIEmulator) -> AsyncIterator[Bot]:
    async with BotAPIServer(emulator) as server:
        session = AiohttpSession(api=TelegramAPIServer.from_base(server.url))
        bot = Bot(TOKEN, session=session)
        yield bot
        await bot.session.close()


async def test_get_me_and_commands_per_scope(bot: Bot, emulator: BotAPIEmulator) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    stats = [BotCommand(command="stats", description="Stats")]
    # Telegram knows no chat with someone who never opened the bot.
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.set_my_commands(stats, scope=BotCommandScopeChat(chat_id=7))
    emulator.user(7)
    await bot.set_my_commands(stats, scope=BotCommandScopeChat(chat_id=7))
    assert [c["command"] for c in emulator.commands["default"]] == ["start"]
    assert [c["command"] for c in emulator.commands["chat:7"]] == ["stats"]
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=7))] == [
        "stats"
    ]
    assert await bot.delete_webhook(drop_pending_updates=True)


async def test_an_observer_sees_every_call_as_it_is_recorded(
    bot: Bot, emulator: BotAPIEmulator
) -> None:
    alice = emulator.user(42, "Alice", language_code="en")
    seen: list[tuple[int, str, int | None, int]] = []
    emulator.observe(
        lambda call: seen.append((call.seq, call.method, call.chat_id, len(emulator.calls)))
    )
    await bot.send_message(alice.id, "one")
    await bot.send_chat_action(alice.id, "typing")
    await bot.get_me()  # no call to record: nothing the bot did in a chat
    assert seen == [(1, "sendMessage", 42, 1), (2, "sendChatAction", 42, 2)]


async def test_updates_offset_confirms_and_long_poll_wakes(
    bot: Bot, emulator: BotAPIEmulator
) -> None:
    alice = emulator.user(42, "Alice", language_code="en")
    alice.send_text("/start")
    alice.send_text("hello")
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates] == ["/start", "hello"]
    assert updates[0].message.entities[0].type == "bot_command"
    assert updates[0].message.from_user.language_code == "en"
    # Not confirmed yet: delivered again; confirmed by the offset: gone.
    assert len(await bot.get_updates(timeout=0)) == 2
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []

    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(offset=updates[-1].update_id + 1, timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    alice.send_text("later")
    woke = await poll
    assert [u.message.text for u in woke] == ["later"]
    assert loop.time() - started < 2


async def test_send_edit_press_and_answer(bot: Bot, emulator: BotAPIEmulator) -> None:
    alice = emulator.user(42, "Alice")
    alice.send_text("/menu")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="answer:yes")]]
    )
    sent = await bot.send_message(42, "Sure?", reply_markup=keyboard)
    call = await emulator.wait_for(42, lambda c: c.text == "Sure?")
    assert call.message_id == sent.message_id and call.buttons[0]["callback_data"] == "answer:yes"

    query = alice.press(call, text="Yes")
    update = (await bot.get_updates(timeout=0))[-1]
    assert update.callback_query.data == "answer:yes"
    assert update.callback_query.message.message_id == sent.message_id
    await bot.answer_callback_query(query["id"], text="ok")
    answer = await emulator.wait_for(42, lambda c: c.method == "answerCallbackQuery")
    assert answer.params["text"] == "ok"

    await bot.edit_message_text("Done", chat_id=42, message_id=sent.message_id)
    assert emulator.message(42, sent.message_id)["text"] == "Done"
    with pytest.raises(LookupError):  # the edit removed the keyboard
        alice.press(call, text="Yes")
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text("Done", chat_id=42, message_id=sent.message_id)
    await bot.edit_message_reply_markup(
        chat_id=42, message_id=sent.message_id, reply_markup=keyboard
    )
    assert emulator.message(42, sent.message_id)["reply_markup"]["inline_keyboard"]
    assert await bot.delete_message(42, sent.message_id)
    with pytest.raises(TelegramBadRequest):
        await bot.delete_message(42, sent.message_id)


async def test_user_files_download_and_bot_uploads(bot: Bot, emulator: BotAPIEmulator) -> None:
    alice = emulator.user(42, "Alice")
    image = png(30, 12)
    alice.send_photo(image, caption="me")
    alice.send_document(b"%PDF-1.4", "face.jpg", "image/jpeg")
    photo_update, document_update = await bot.get_updates(timeout=0)
    size = photo_update.message.photo[-1]
    assert (size.width, size.height, size.file_size) == (30, 12, len(image))
    file = await bot.get_file(size.file_id)
    assert (await bot.download_file(file.file_path)).read() == image
    document = document_update.message.document
    assert document.file_name == "face.jpg" and document.mime_type == "image/jpeg"
    downloaded = await bot.download(document.file_id)
    assert downloaded.read() == b"%PDF-1.4"

    await bot.send_photo(42, BufferedInputFile(image, "x.png"), caption="annotated")
    await bot.send_document(42, BufferedInputFile(b"zipdata", "dataset.zip"))
    await bot.send_chat_action(42, "upload_photo")
    photo = await emulator.wait_for(42, lambda c: c.method == "sendPhoto")
    assert photo.files["photo"] == image and photo.text == "annotated"
    sent = await emulator.wait_for(42, lambda c: c.method == "sendDocument")
    assert sent.files["document"] == b"zipdata"
    message = emulator.message(42, sent.message_id)
    assert message["document"]["file_name"] == "dataset.zip"
    action = await emulator.wait_for(42, lambda c: c.method == "sendChatAction")
    assert action.params["action"] == "upload_photo"


async def test_album_sticker_video_and_big_files(bot: Bot, emulator: BotAPIEmulator) -> None:
    alice = emulator.user(42, "Alice")
    alice.send_album([png(), png(5, 5)])
    alice.send_sticker()
    alice.send_video()
    big = alice.send_document(b"x" * (MAX_DOWNLOAD_BYTES + 1), "big.jpg", "image/jpeg")
    updates = await bot.get_updates(timeout=0)
    first, second, sticker, video, document = (u.message for u in updates)
    assert first.media_group_id and first.media_group_id == second.media_group_id
    assert sticker.sticker is not None and video.video is not None
    assert document.document.file_size == MAX_DOWNLOAD_BYTES + 1
    with pytest.raises(TelegramBadRequest, match="too big"):
        await bot.get_file(big["document"]["file_id"])


async def test_flood_control_answers_retry_after(bot: Bot, emulator: BotAPIEmulator) -> None:
    emulator.user(42, "Alice")
    emulator.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(42, "hi")
    assert error.value.retry_after == 3
    await bot.send_message(42, "hi")
    assert [c.text for c in emulator.calls_in(42, after=0)] == ["hi"]


async def test_wait_for_times_out_with_what_was_seen(bot: Bot, emulator: BotAPIEmulator) -> None:
    alice = emulator.user(42, "Alice")
    await bot.send_message(42, "before")
    alice.send_text("/x")  # moves the mark: "before" does not answer it
    await bot.send_message(42, "after")
    assert (await emulator.wait_for(42)).text == "after"
    with pytest.raises(TimeoutError, match="after"):
        await emulator.wait_for(42, lambda c: c.text == "never", timeout=0.2)


async def test_plain_http_clients_json_and_unknown_methods(emulator: BotAPIEmulator) -> None:
    emulator.user(42, "Alice")
    async with BotAPIServer(emulator) as server, aiohttp.ClientSession() as http:
        base = f"{server.url}/bot{TOKEN}"
        async with http.post(f"{base}/sendMessage", json={"chat_id": 42, "text": "json"}) as r:
            assert r.status == 200 and (await r.json())["result"]["text"] == "json"
        async with http.get(f"{base}/sendMessage", params={"chat_id": "42", "text": "q"}) as r:
            assert (await r.json())["result"]["chat"]["id"] == 42
        async with http.post(f"{base}/launchRocket") as r:
            body = await r.json()
            assert r.status == 404 and body["ok"] is False
        async with http.post(f"{base}/sendMessage", json={"chat_id": 42}) as r:
            assert r.status == 400 and "text" in (await r.json())["description"]
        async with http.get(f"{server.url}/file/bot{TOKEN}/photos/none.jpg") as r:
            assert r.status == 404


# Telegram's answers, as its HTML parser (TDLib's) words them.
HTML_CASES = [
    ("<b>bold</b> and <i>it</i> <code>x</code>", None),
    ('<a href="https://example.org/?a=1&amp;b=2">link</a>', None),
    ("<pre>a &lt; b &amp;&amp; c &gt; d</pre>", None),
    ("<b><i>nested</i></b>", None),
    ("AT&T is fine: an unknown entity stays text", None),
    ("<b>x</b >", None),
    ("<b>x</>", None),
    ("ValueError: 1 < 2", 'Unsupported start tag "" at byte offset 14'),
    ("KeyError: <class 'int'>", 'Unsupported start tag "class" at byte offset 10'),
    ("<br>", 'Unsupported start tag "br" at byte offset 0'),
    ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
    ("bold</b>", "Unexpected end tag at byte offset 4"),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ("é <b", "Unclosed start tag at byte offset 3"),
    ("<b>x</b", "Unclosed end tag at byte offset 4"),
    ("<b>x</ b>", "Unclosed end tag at byte offset 4"),
    (
        "<a href>x</a>",
        'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0',
    ),
]


@pytest.mark.parametrize(("text", "error"), HTML_CASES)
async def test_html_is_parsed_as_telegram_parses_it(
    bot: Bot, emulator: BotAPIEmulator, text: str, error: str | None
) -> None:
    emulator.user(7)
    if error is None:
        sent = await bot.send_message(7, text, parse_mode="HTML")
        await bot.edit_message_text(
            text + " ", chat_id=7, message_id=sent.message_id, parse_mode="HTML"
        )
        await bot.send_photo(7, BufferedInputFile(png(), "p.png"), caption=text, parse_mode="HTML")
        return
    expected = f"Bad Request: can't parse entities: {error}"
    with pytest.raises(TelegramBadRequest) as raised:
        await bot.send_message(7, text, parse_mode="HTML")
    assert raised.value.message == expected
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_photo(7, BufferedInputFile(png(), "p.png"), caption=text, parse_mode="HTML")
    sent = await bot.send_message(7, "plain")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.edit_message_text(text, chat_id=7, message_id=sent.message_id, parse_mode="HTML")
    # Without a parse mode the same text is just text.
    assert (await bot.send_message(7, text)).text == text


def test_the_update_counter_survives_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state" / "botapi.json"
    first = BotAPIEmulator(state_file=state)
    for n in range(3):
        first.user(7).send_text(f"message {n}")
    again = BotAPIEmulator(state_file=state)
    again.user(7).send_text("after the restart")
    assert [u["update_id"] for u in first.pushed + again.pushed] == [1, 2, 3, 4]
    # Without one (the tests), each emulator starts at 1.
    fresh = BotAPIEmulator()
    fresh.user(7).send_text("x")
    assert fresh.pushed[-1]["update_id"] == 1
