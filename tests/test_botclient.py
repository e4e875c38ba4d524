"""The worker's and the trainer's Bot API client against the fake Bot API over HTTP: what it
sends arrives as aiogram's would (JSON fields, multipart uploads, `attach://` in media groups),
and each kind of error answer becomes the exception aiogram would raise."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from playground.botapi import BotAPIEmulator, BotAPIError, BotAPIServer
from runtime.botclient import (
    BotClient,
    BotSession,
    BufferedInputFile,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)

API = tuple[BotAPIEmulator, BotAPIServer]
FACES = Path(__file__).parent / "data" / "faces"
CHAT = 70_001


@pytest.fixture
async def client(botapi: API) -> AsyncIterator[BotClient]:
    client = BotClient("42:client-test", BotSession(botapi[1].url))
    yield client
    await client.session.close()


async def test_a_reply_with_a_keyboard_arrives_as_sent(client: BotClient, botapi: API) -> None:
    emulator, _ = botapi
    asked = emulator.user(CHAT).send_text("hello")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes", "url": None}]]}
    sent = await client.send_message(
        CHAT,
        "<b>Hi</b> & welcome",
        parse_mode="HTML",
        reply_parameters={"message_id": asked["message_id"], "allow_sending_without_reply": True},
        reply_markup=markup,
    )
    (call,) = emulator.calls_in(CHAT)
    assert call.method == "sendMessage" and call.message_id == sent.message_id
    assert call.params["text"] == "<b>Hi</b> & welcome" and call.params["parse_mode"] == "HTML"
    assert call.buttons == [{"text": "Yes", "callback_data": "yes"}]  # None fields left out
    stored = emulator.message(CHAT, sent.message_id)
    assert stored["reply_to_message"]["message_id"] == asked["message_id"]
    assert sent.chat_id == CHAT


async def test_photos_are_uploaded_alone_and_in_an_album(client: BotClient, botapi: API) -> None:
    emulator, _ = botapi
    emulator.user(CHAT)
    jpeg = (FACES / "astronaut.jpg").read_bytes()
    three = (FACES / "three_faces.jpg").read_bytes()
    await client.send_photo(CHAT, BufferedInputFile(jpeg, "faces.jpg"), caption="one face")
    album = await client.send_media_group(
        CHAT,
        [
            {"type": "photo", "media": BufferedInputFile(jpeg, "a.jpg"), "caption": "first"},
            {"type": "photo", "media": BufferedInputFile(three, "b.jpg"), "caption": None},
        ],
    )
    photo, *group = emulator.calls_in(CHAT)
    assert (photo.method, photo.text, photo.files["photo"]) == ("sendPhoto", "one face", jpeg)
    assert [(c.method, c.text, c.files["photo"]) for c in group] == [
        ("sendMediaGroup", "first", jpeg),
        ("sendMediaGroup", None, three),
    ]
    assert [m.message_id for m in album] == [c.message_id for c in group]


async def test_a_message_is_edited_and_an_unchanged_edit_is_a_bad_request(
    client: BotClient, botapi: API
) -> None:
    emulator, _ = botapi
    emulator.user(CHAT)
    sent = await client.send_message(CHAT, "epoch 1")
    edited = await client.edit_message_text("epoch 2", chat_id=CHAT, message_id=sent.message_id)
    assert edited == sent and emulator.message(CHAT, sent.message_id)["text"] == "epoch 2"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await client.edit_message_text("epoch 2", chat_id=CHAT, message_id=sent.message_id)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (BotAPIError(403, "Forbidden: bot was blocked by the user"), TelegramForbiddenError),
        (BotAPIError(400, "Bad Request: chat not found"), TelegramBadRequest),
        (BotAPIError(404, "Not Found"), TelegramNotFound),
        (BotAPIError(502, "Bad Gateway"), TelegramServerError),
        (BotAPIError(409, "Conflict"), TelegramAPIError),
    ],
)
async def test_error_answers_map_as_aiogram_maps_them(
    client: BotClient, botapi: API, answer: BotAPIError, expected: type[TelegramAPIError]
) -> None:
    emulator, _ = botapi
    emulator._failures["sendmessage"] = [answer]
    with pytest.raises(expected) as raised:
        await client.send_message(CHAT, "hi")
    assert type(raised.value) is expected
    assert raised.value.method == "sendMessage" and raised.value.message == answer.description


async def test_flood_control_says_how_long_to_wait(client: BotClient, botapi: API) -> None:
    emulator, _ = botapi
    emulator.user(CHAT)
    emulator.flood(CHAT, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as raised:
        await client.send_photo(CHAT, BufferedInputFile(b"not sent", "x.jpg"))
    assert raised.value.retry_after == 7
    assert emulator.calls_in(CHAT) == []


async def test_an_unreachable_server_is_a_network_error() -> None:
    client = BotClient("42:client-test", BotSession("http://127.0.0.1:9"))  # discard: closed
    try:
        with pytest.raises(TelegramNetworkError):
            await client.send_message(CHAT, "hi")
    finally:
        await client.session.close()
